// The backend-independent runner of the conformance fixtures.
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "catch_session.h"
#include "conformance.h"
#include "dpv2/lb_state.h"
#include "dpv2/packet.h"

namespace dpv2::conformance {
namespace {

NodeInfo ConformanceNode() {
  NodeInfo node;
  node.name = "node-a";
  node.zone = "zone-1";
  node.addresses = {*IpAddr::Parse("192.168.1.10"), *IpAddr::Parse("fd00:1::10")};
  return node;
}

std::string DescribeEvent(const FlowEvent& e) { return e.ToString(); }

std::string DescribeExpected(const ExpectedEvent& e) {
  FlowEvent f;
  f.type = e.type;
  f.flags = e.flags;
  f.drop_reason = e.reason;
  f.tuple = e.tuple;
  f.orig_dst = e.orig_dst;
  f.orig_dport = e.orig_dport;
  return f.ToString();
}

bool EventMatches(const FlowEvent& got, const ExpectedEvent& want) {
  return got.type == want.type && got.flags == want.flags && got.drop_reason == want.reason &&
         got.tuple.src == want.tuple.src && got.tuple.dst == want.tuple.dst &&
         got.tuple.sport == want.tuple.sport && got.tuple.dport == want.tuple.dport &&
         static_cast<uint8_t>(got.tuple.proto) == static_cast<uint8_t>(want.tuple.proto) &&
         got.orig_dst == want.orig_dst && got.orig_dport == want.orig_dport;
}

// The destination (address, port) of an output frame, for consistency checks.
std::string DestinationOf(const std::vector<uint8_t>& frame) {
  ParseResult r = ParsePacket(frame);
  if (r.drop != DPV2_DROP_NONE || !r.is_ip) {
    return "<unparsed>";
  }
  return absl::StrCat(r.pkt.dst.ToString(), " port ", r.pkt.dport);
}

bool KeyMatches(const dpv2_ct_key& k, const ExpectedStamp& want) {
  const FiveTuple& t = want.key;
  return k.proto == static_cast<uint8_t>(t.proto) &&
         k.family == static_cast<uint8_t>(t.src.family()) &&
         ((k.flags & DPV2_CT_KEY_SERVICE) != 0) == want.service &&
         IpAddr::FromAbi(k.saddr, t.src.family()) == t.src &&
         IpAddr::FromAbi(k.daddr, t.dst.family()) == t.dst && ntohs(k.sport) == t.sport &&
         ntohs(k.dport) == t.dport;
}

// Every conntrack entry's stamp is the expected one (ExpectedStamp).
void CheckStamps(Backend& backend, const std::vector<ExpectedStamp>& stamps) {
  absl::StatusOr<std::vector<ConntrackEntry>> ct = backend.DumpConntrack();
  REQUIRE(ct.ok());
  CHECK(ct->size() == stamps.size());
  for (const ExpectedStamp& want : stamps) {
    INFO("stamp of " << (want.service ? "SERVICE " : "") << want.key.ToString());
    auto found = std::find_if(ct->begin(), ct->end(), [&](const ConntrackEntry& e) {
      return KeyMatches(e.key, want);
    });
    REQUIRE(found != ct->end());
    const dpv2_ct_value& v = found->value;
    INFO("revision " << v.revision << ", in_ifindex " << v.in_ifindex << ", cache_flags "
                     << static_cast<int>(v.cache_flags));
    CHECK((v.revision != 0) == want.stamped);
    CHECK(v.in_ifindex == want.in_ifindex);
    CHECK((v.cache_flags & ~DPV2_CT_C_XDP) == want.cache_flags);
  }
}

// Compiles the case's Services and applies what changed, plus `extra`.
absl::Status Sync(LbState& lb, const std::vector<ServiceSpec>& services, Backend& backend,
                  const ChangeBatch& extra) {
  for (const ServiceSpec& s : services) {
    if (absl::Status st = lb.UpsertService(s); !st.ok()) {
      return st;
    }
  }
  const ChangeBatch lb_batch = lb.Diff();
  ChangeBatch batch = lb_batch;
  batch.Append(extra);
  if (absl::Status st = backend.Apply(batch); !st.ok()) {
    return st;
  }
  lb.Acknowledge(lb_batch);
  return absl::OkStatus();
}

}  // namespace

void RunCase(ConformanceHarness& harness, const ConformanceCase& c) {
  absl::StatusOr<std::unique_ptr<Backend>> made = harness.MakeBackend(c.config);
  INFO("harness " << harness.Name());
  REQUIRE(made.ok());
  Backend& backend = **made;

  absl::StatusOr<LbState> lb = LbState::Create({.datapath = c.config, .maglev_seed = kMaglevSeed});
  REQUIRE(lb.ok());
  absl::Status node_status = lb->SetNode(ConformanceNode());
  INFO("SetNode: " << node_status.ToString());
  REQUIRE(node_status.ok());
  ChangeBatch extra;
  extra.endpoints_upsert = c.endpoints;
  extra.ipcache_upsert = c.ipcache;
  extra.policy_upsert = c.policy;
  std::vector<ServiceSpec> services = c.services;
  {
    absl::Status st = Sync(*lb, services, backend, extra);
    INFO("initial state: " << st.ToString());
    REQUIRE(st.ok());
  }

  std::vector<std::vector<uint8_t>> outputs(c.steps.size());
  for (size_t i = 0; i < c.steps.size(); ++i) {
    const Step& step = c.steps[i];
    INFO("step " << i);
    if (step.change || !step.apply.empty()) {
      if (step.change) {
        step.change(services);
      }
      absl::Status st = Sync(*lb, services, backend, step.apply);
      INFO("state change: " << st.ToString());
      REQUIRE(st.ok());
    }
    if (step.advance_ns > 0) {
      absl::Status st = harness.AdvanceTime(backend, step.advance_ns);
      INFO("advance time: " << st.ToString());
      REQUIRE(st.ok());
    }
    if (step.collect_garbage) {
      absl::StatusOr<GcStats> gc = backend.CollectGarbage();
      INFO("garbage collection: " << gc.status().ToString());
      REQUIRE(gc.ok());
    }
    if (!step.frame.empty()) {
      absl::StatusOr<Counters> before = backend.ReadCounters();
      REQUIRE(before.ok());
      INFO("input: " << DescribePacket(step.frame));
      absl::StatusOr<PacketOutcome> out =
          backend.RunPacket({.entry = step.entry, .ifindex = step.ifindex, .frame = step.frame});
      INFO("RunPacket: " << out.status().ToString());
      if (step.refused) {
        REQUIRE(absl::IsInvalidArgument(out.status()));
        absl::StatusOr<Counters> after = backend.ReadCounters();
        REQUIRE(after.ok());
        CHECK(after->counters == before->counters);
        CHECK(after->drops == before->drops);
        continue;
      }
      REQUIRE(out.ok());
      absl::StatusOr<Counters> after = backend.ReadCounters();
      REQUIRE(after.ok());
      (void)backend.DrainEvents(1 << 20);

      CHECK(VerdictName(out->verdict) == VerdictName(step.verdict));
      CHECK(DropReasonName(out->drop_reason) == DropReasonName(step.drop));
      if (step.verdict == Verdict::kDrop) {
        CHECK(out->outputs.empty());
      } else {
        REQUIRE(out->outputs.size() == 1);
        const OutputFrame& got = out->outputs[0];
        CHECK(VerdictName(got.verdict) == VerdictName(step.verdict));
        if (step.verdict == Verdict::kRedirect) {
          CHECK(got.out_ifindex == step.out_ifindex);
        } else if (step.verdict == Verdict::kTx) {
          CHECK(got.out_ifindex == step.ifindex);
        }
        outputs[i] = got.frame;
        REQUIRE(!step.outputs.empty());
        bool matched = false;
        std::string wanted;
        for (const std::vector<uint8_t>& want : step.outputs) {
          matched = matched || want == got.frame;
          absl::StrAppend(&wanted, "\n  want: ", DescribePacket(want));
        }
        INFO("got:  " << DescribePacket(got.frame) << wanted);
        CHECK(matched);
        if (step.same_destination_as) {
          CHECK(DestinationOf(got.frame) == DestinationOf(outputs[*step.same_destination_as]));
        }
        if (step.other_destination_than) {
          CHECK(DestinationOf(got.frame) != DestinationOf(outputs[*step.other_destination_than]));
        }
      }
      if (step.check_events) {
        std::string got_events;
        for (const FlowEvent& e : out->events) {
          absl::StrAppend(&got_events, "\n  got:  ", DescribeEvent(e));
        }
        for (const ExpectedEvent& e : step.events) {
          absl::StrAppend(&got_events, "\n  want: ", DescribeExpected(e));
        }
        INFO("events:" << got_events);
        bool same = out->events.size() == step.events.size();
        for (size_t k = 0; same && k < step.events.size(); ++k) {
          same = EventMatches(out->events[k], step.events[k]);
        }
        CHECK(same);
      }
      for (const auto& [counter, delta] : step.counters) {
        INFO("counter " << CounterName(counter));
        CHECK(after->counter(counter) - before->counter(counter) == delta);
      }
      for (const auto& [reason, delta] : step.drops) {
        INFO("drop counter " << DropReasonName(reason));
        CHECK(after->drop(reason) - before->drop(reason) == delta);
      }
    }
    if (step.conntrack_entries) {
      absl::StatusOr<std::vector<ConntrackEntry>> ct = backend.DumpConntrack();
      REQUIRE(ct.ok());
      CHECK(ct->size() == *step.conntrack_entries);
    }
    if (step.stamps) {
      CheckStamps(backend, *step.stamps);
    }
  }
  // A case that stopped at a REQUIRE destroys its backend instead.
  absl::Status recycled = harness.Recycle(*std::move(made), c.config);
  INFO("giving the backend back: " << recycled.ToString());
  CHECK(recycled.ok());
}

std::vector<ConformanceCase> AllCases() {
  std::vector<ConformanceCase> cases = ServiceCases();
  for (ConformanceCase& c : CollisionCases()) {
    cases.push_back(std::move(c));
  }
  for (ConformanceCase& c : PolicyCases()) {
    cases.push_back(std::move(c));
  }
  for (ConformanceCase& c : PolicyRuleCases()) {
    cases.push_back(std::move(c));
  }
  return cases;
}

namespace {

class CaseInvoker : public Catch::ITestInvoker {
 public:
  CaseInvoker(ConformanceHarness* harness, const ConformanceCase* c) : harness_(harness), c_(c) {}
  void invoke() const override { RunCase(*harness_, *c_); }

 private:
  ConformanceHarness* harness_;
  const ConformanceCase* c_;
};

class StateCaseInvoker : public Catch::ITestInvoker {
 public:
  StateCaseInvoker(ConformanceHarness* harness, const StateCase* c) : harness_(harness), c_(c) {}
  void invoke() const override { c_->run(*harness_); }

 private:
  ConformanceHarness* harness_;
  const StateCase* c_;
};

}  // namespace

int RunConformanceMain(int argc, char** argv, std::unique_ptr<ConformanceHarness> harness) {
  const char* ci = std::getenv("CI");
  const bool in_ci = ci != nullptr && std::strcmp(ci, "true") == 0;
  if (absl::Status st = harness->Prepare(); !st.ok()) {
    std::fprintf(stderr, "conformance %s: cannot run here: %s\n", harness->Name().c_str(),
                 st.ToString().c_str());
    if (absl::IsUnavailable(st) && !in_ci) {
      return 77;
    }
    return 1;
  }
  static const std::vector<ConformanceCase> cases = AllCases();
  for (const ConformanceCase& c : cases) {
    Catch::getMutableRegistryHub().registerTest(Catch::makeTestCase(
        new CaseInvoker(harness.get(), &c), "",
        Catch::NameAndTags(c.proves.c_str(), "[conformance]"),
        Catch::SourceLineInfo("service_cases.cc", 0)));
  }
  static const std::vector<StateCase> state_cases = StateCases();
  for (const StateCase& c : state_cases) {
    Catch::getMutableRegistryHub().registerTest(Catch::makeTestCase(
        new StateCaseInvoker(harness.get(), &c), "",
        Catch::NameAndTags(c.proves.c_str(), "[conformance][state]"),
        Catch::SourceLineInfo("state_cases.cc", 0)));
  }
  const int result = dpv2::testing::RunCatchSession(argc, argv);
  if (absl::Status st = harness->Cleanup(); !st.ok()) {
    std::fprintf(stderr, "conformance %s: cleanup: %s\n", harness->Name().c_str(),
                 st.ToString().c_str());
    return result == 0 ? 1 : result;
  }
  return result;
}

}  // namespace dpv2::conformance
