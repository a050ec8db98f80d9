// The installer's manifest (`<host dir>/.license-holder.json`): it names what Withdraw deletes,
// so a hostile or corrupt manifest must never name anything but plain entries of the host dir.
//   - ParseManifest never crashes; accepted entries are never empty, ".", ".." or contain '/';
//   - ParseManifest(SerializeManifest(m)) == m;
//   - installing a license whose directory and file names come from the fuzzer (through Pool and
//     Installer, as the agent does) never throws and leaves a manifest that reads back.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "license/fake_fs.h"
#include "license/installer.h"
#include "license/pool.h"

#include "fuzz_check.h"

namespace {
bool Same(const lm::license::Manifest& a, const lm::license::Manifest& b) {
  return a.license == b.license && a.hash == b.hash && a.entries == b.entries;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lm::license;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto m = ParseManifest(in);
  if (m.ok()) {
    for (const auto& e : m->entries) {
      Check(!e.empty() && e != "." && e != ".." && e.find('/') == std::string::npos,
            "manifest entry that is not a plain name");
    }
    auto back = ParseManifest(SerializeManifest(*m));
    Check(back.ok() && Same(*back, *m), "ParseManifest(SerializeManifest(m)) != m");
  }

  // The real pipeline that writes manifests: a pool whose license and file names come from the
  // fuzzer, Pool::Names + ReadLicense, Installer::Install. Must return a Status, never throw.
  FuzzedDataProvider p(data, size);
  FakeFilesystem fs;
  fs.AddDir("/pool");
  fs.AddDir("/host");
  auto plain = [](const std::string& n) {
    return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
           n.find('\0') == std::string::npos;
  };
  std::string lic = p.ConsumeRandomLengthString(32);
  if (!plain(lic)) return 0;
  for (int added = 0; p.remaining_bytes() > 0 && added < 8; ++added) {
    std::string e = p.ConsumeRandomLengthString(32);
    if (plain(e)) fs.AddFile("/pool/" + lic + "/" + e, "x");
  }
  Pool pool(fs, "/pool");
  auto names = pool.Names();
  if (!names.ok()) return 0;
  for (const std::string& name : *names) {
    auto files = pool.ReadLicense(name);
    if (!files.ok()) continue;
    Installer inst(fs, "/host");
    if (!inst.Install(name, *files).ok()) continue;
    auto back = inst.ReadManifest();
    Check(back.ok() && *back && (*back)->license == name, "installed manifest does not read back");
  }
  return 0;
}
