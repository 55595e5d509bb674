#include "agent/manifest_source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dpv2::agent {
namespace {

namespace fs = std::filesystem;

bool IsManifestFile(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// Sorted manifest files under `root` (root itself when it is a file).
std::vector<fs::path> ManifestFiles(const fs::path& root, std::error_code& ec) {
  std::vector<fs::path> files;
  if (fs::is_regular_file(root, ec)) {
    files.push_back(root);
    return files;
  }
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    // Editors' and Kubernetes' ConfigMap mounts' hidden entries ("..data").
    if (absl::StartsWith(it->path().filename().string(), ".")) {
      if (it->is_directory(ec)) {
        it.disable_recursion_pending();
      }
      continue;
    }
    if (it->is_regular_file(ec) && IsManifestFile(it->path())) {
      files.push_back(it->path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

absl::StatusOr<k8s::ClusterObjects> ManifestSource::Load() {
  k8s::ClusterObjects objects;
  if (path_ == "-") {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    k8s::AddManifestText(text, "<stdin>", &objects);
    return objects;
  }
  std::error_code ec;
  if (!fs::exists(path_, ec)) {
    return absl::NotFoundError(absl::StrCat("manifests: ", path_, ": no such file or directory"));
  }
  last_fingerprint_ = Fingerprint();
  std::vector<fs::path> files = ManifestFiles(path_, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("manifests: ", path_, ": ", ec.message()));
  }
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      objects.errors.push_back(absl::StrCat(file.string(), ": cannot read"));
      continue;
    }
    std::stringstream text;
    text << in.rdbuf();
    k8s::AddManifestText(text.str(), file.string(), &objects);
  }
  return objects;
}

std::vector<std::string> ManifestSource::Fingerprint() const {
  std::vector<std::string> out;
  if (path_ == "-") {
    return out;
  }
  std::error_code ec;
  for (const fs::path& file : ManifestFiles(path_, ec)) {
    std::error_code e2;
    auto size = fs::file_size(file, e2);
    auto mtime = fs::last_write_time(file, e2).time_since_epoch().count();
    out.push_back(absl::StrCat(file.string(), " ", size, " ", mtime));
  }
  return out;
}

bool ManifestSource::Changed() const { return Fingerprint() != last_fingerprint_; }

}  // namespace dpv2::agent
