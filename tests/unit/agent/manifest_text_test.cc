// YAML/JSON manifest text to JSON objects, with Kubernetes' scalar rules.
#include <catch2/catch.hpp>

#include "agent/k8s/manifest_text.h"

namespace dpv2::agent::k8s {
namespace {

TEST_CASE("plain YAML scalars resolve like Kubernetes' YAML reader, quoted ones stay strings") {
  absl::StatusOr<nlohmann::json> j = YamlToJson(
      "a: 80\nb: \"80\"\nc: yes\nd: 'on'\ne: 0x1F\nf: 010\ng: 1.5\nh: ~\ni: null\n"
      "j: web\nk: -3\nl: 1_000\nm: 0o17\nn: False\no: 18446744073709551615\n");
  REQUIRE(j.ok());
  CHECK((*j)["a"] == 80);
  CHECK((*j)["b"] == "80");
  CHECK((*j)["c"] == true);
  CHECK((*j)["d"] == "on");
  CHECK((*j)["e"] == 31);
  CHECK((*j)["f"] == 8);
  CHECK((*j)["g"].is_number_float());
  CHECK((*j)["h"].is_null());
  CHECK((*j)["i"].is_null());
  CHECK((*j)["j"] == "web");
  CHECK((*j)["k"] == -3);
  CHECK((*j)["l"] == 1000);
  CHECK((*j)["m"] == 15);
  CHECK((*j)["n"] == false);
  CHECK((*j)["o"].is_number_unsigned());
}

TEST_CASE("strings that only look numeric stay strings") {
  CHECK(ResolvePlainScalar("1.2.3.4") == "1.2.3.4");
  CHECK(ResolvePlainScalar("10.0.0.0/8") == "10.0.0.0/8");
  CHECK(ResolvePlainScalar("0x") == "0x");
  CHECK(ResolvePlainScalar("089") == 89.0);  // not octal; go-yaml then reads a float
  CHECK(ResolvePlainScalar(".inf") == ".inf");
  CHECK(ResolvePlainScalar("99999999999999999999999").is_number_float());  // as go-yaml
}

TEST_CASE("block scalars and flow collections convert") {
  absl::StatusOr<nlohmann::json> j =
      YamlToJson("list: [1, \"two\", {three: 3}]\ntext: |\n  line1\n  line2\n");
  REQUIRE(j.ok());
  CHECK((*j)["list"][0] == 1);
  CHECK((*j)["list"][1] == "two");
  CHECK((*j)["list"][2]["three"] == 3);
  CHECK((*j)["text"] == "line1\nline2\n");
}

TEST_CASE("duplicate keys and syntax errors are reported with a line") {
  absl::StatusOr<nlohmann::json> dup = YamlToJson("a: 1\na: 2\n");
  REQUIRE_FALSE(dup.ok());
  CHECK(std::string(dup.status().message()).find("duplicate key \"a\"") != std::string::npos);
  absl::StatusOr<nlohmann::json> bad = YamlToJson("a: [1, 2\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).find("line") != std::string::npos);
}

TEST_CASE("multi-document YAML yields one object per document and skips empty ones") {
  ManifestDocuments docs = ParseManifestText(
      "---\nkind: A\n---\n# only a comment\n---\nkind: B\n...\n---\n", "f.yaml");
  CHECK(docs.errors.empty());
  REQUIRE(docs.objects.size() == 2);
  CHECK(docs.objects[0].object["kind"] == "A");
  CHECK(docs.objects[1].object["kind"] == "B");
  CHECK(docs.objects[1].origin == "f.yaml: document 2");
}

TEST_CASE("a broken YAML document does not hide the documents around it") {
  ManifestDocuments docs =
      ParseManifestText("kind: A\n---\nkind: [broken\n---\nkind: C\n", "f.yaml");
  REQUIRE(docs.objects.size() == 2);
  CHECK(docs.objects[0].object["kind"] == "A");
  CHECK(docs.objects[1].object["kind"] == "C");
  REQUIRE(docs.errors.size() == 1);
  CHECK(docs.errors[0].find("f.yaml: document 2 (from line 2): invalid YAML") == 0);
}

TEST_CASE("kind List and typed lists are expanded, typed items get their envelope") {
  ManifestDocuments docs = ParseManifestText(
      "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod}\n- {kind: Namespace}\n"
      "---\napiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a}\n",
      "l.yaml");
  CHECK(docs.errors.empty());
  REQUIRE(docs.objects.size() == 3);
  CHECK(docs.objects[0].object["kind"] == "Pod");
  CHECK(docs.objects[1].object["kind"] == "Namespace");
  CHECK(docs.objects[2].object["kind"] == "Service");
  CHECK(docs.objects[2].object["apiVersion"] == "v1");
  CHECK(docs.objects[2].origin == "l.yaml: document 2, items[0]");
}

TEST_CASE("JSON text is read as JSON, a top-level array as several objects") {
  ManifestDocuments docs =
      ParseManifestText(R"([{"kind":"A","n":80}, {"kind":"B","n":"80"}])", "f.json");
  CHECK(docs.errors.empty());
  REQUIRE(docs.objects.size() == 2);
  CHECK(docs.objects[0].object["n"] == 80);
  CHECK(docs.objects[1].object["n"] == "80");
  ManifestDocuments bad = ParseManifestText(R"({"kind": )", "bad.json");
  CHECK(bad.objects.empty());
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].find("bad.json: document 1: invalid JSON") == 0);
}

TEST_CASE("the source text of unquoted non-string scalars is kept for string fields") {
  ManifestDocuments docs = ParseManifestText("labels: {ns: y, v: 1.0, on: yes}\nq: \"y\"\n", "t.yaml");
  REQUIRE(docs.objects.size() == 1);
  REQUIRE(docs.objects[0].scalar_texts != nullptr);
  const nlohmann::json& obj = docs.objects[0].object;
  const ScalarTexts& texts = *docs.objects[0].scalar_texts;
  CHECK(obj["labels"]["ns"] == true);
  CHECK(texts.at(&obj["labels"]["ns"]) == "y");
  CHECK(texts.at(&obj["labels"]["v"]) == "1.0");
  CHECK(texts.at(&obj["labels"]["on"]) == "yes");
  CHECK(texts.count(&obj["q"]) == 0);  // quoted: already a string
}

TEST_CASE("a document that is not a map is an error") {
  ManifestDocuments docs = ParseManifestText("- a\n- b\n", "f.yaml");
  CHECK(docs.objects.empty());
  REQUIRE(docs.errors.size() == 1);
  CHECK(docs.errors[0] == "f.yaml: document 1: a Kubernetes object must be a map");
}

}  // namespace
}  // namespace dpv2::agent::k8s
