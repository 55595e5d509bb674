#include "dpv2/lb_state.h"

namespace dpv2 {

struct LbState::State {
  LbStateOptions options;
  NodeInfo node;
};

absl::string_view FrontendKindName(FrontendKind kind) {
  switch (kind) {
    case FrontendKind::kClusterIP:
      return "ClusterIP";
    case FrontendKind::kNodePort:
      return "NodePort";
    case FrontendKind::kLoadBalancer:
      return "LoadBalancer";
    case FrontendKind::kExternalIP:
      return "ExternalIP";
  }
  return "Unknown";
}

absl::StatusOr<LbState> LbState::Create(const LbStateOptions& options) {
  auto state = std::make_unique<State>();
  state->options = options;
  return LbState(std::move(state));
}

LbState::LbState(std::unique_ptr<State> state) : state_(std::move(state)) {}
LbState::LbState(LbState&&) noexcept = default;
LbState& LbState::operator=(LbState&&) noexcept = default;
LbState::~LbState() = default;

absl::Status LbState::SetNode(const NodeInfo& node) {
  state_->node = node;
  return absl::OkStatus();
}
absl::Status LbState::UpsertService(const ServiceSpec&) {
  return absl::UnimplementedError("LbState::UpsertService: not yet implemented");
}
absl::Status LbState::RemoveService(absl::string_view, absl::string_view) {
  return absl::UnimplementedError("LbState::RemoveService: not yet implemented");
}
ChangeBatch LbState::Diff() const { return {}; }
void LbState::Acknowledge(const ChangeBatch&) {}
void LbState::ResetAcknowledged() {}
std::vector<FrontendView> LbState::Frontends() const { return {}; }
std::vector<BackendView> LbState::Backends() const { return {}; }
const NodeInfo& LbState::node() const { return state_->node; }
size_t LbState::service_count() const { return 0; }
const LbStateOptions& LbState::options() const { return state_->options; }

}  // namespace dpv2
