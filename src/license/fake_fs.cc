#include "license/fake_fs.h"

namespace lm::license {

namespace {
std::string Parent(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return path.substr(0, slash);
}
bool Under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}
}  // namespace

FakeFilesystem::Node& FakeFilesystem::Put(const std::string& path, FileType type,
                                          std::string content) {
  Node& n = nodes_[path];
  n.type = type;
  n.content = std::move(content);
  n.mtime_ns = ++tick_;
  n.inode = ++inodes_;
  return n;
}

void FakeFilesystem::AddParents(const std::string& path) {
  for (std::string p = Parent(path); p != "/" && !nodes_.count(p); p = Parent(p)) {
    Put(p, FileType::kDir, "");
  }
}

void FakeFilesystem::AddFile(const std::string& path, std::string content) {
  std::lock_guard<std::mutex> l(mu_);
  AddParents(path);
  Put(path, FileType::kFile, std::move(content));
}

void FakeFilesystem::AddDir(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  AddParents(path);
  Put(path, FileType::kDir, "");
}

void FakeFilesystem::AddSymlink(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  AddParents(path);
  Put(path, FileType::kSymlink, "");
}

void FakeFilesystem::FailReads(const std::string& prefix, Status error) {
  std::lock_guard<std::mutex> l(mu_);
  read_faults_[prefix] = std::move(error);
}

void FakeFilesystem::FailWrites(const std::string& prefix, Status error) {
  std::lock_guard<std::mutex> l(mu_);
  write_faults_[prefix] = std::move(error);
}

void FakeFilesystem::FailContentReads(const std::string& prefix, Status error) {
  std::lock_guard<std::mutex> l(mu_);
  content_faults_[prefix] = std::move(error);
}

void FakeFilesystem::ClearFaults() {
  std::lock_guard<std::mutex> l(mu_);
  content_faults_.clear();
  read_faults_.clear();
  write_faults_.clear();
}

bool FakeFilesystem::Exists(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  return nodes_.count(path) > 0;
}

std::optional<std::string> FakeFilesystem::Content(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(path);
  if (it == nodes_.end() || it->second.type != FileType::kFile) return std::nullopt;
  return it->second.content;
}

int FakeFilesystem::lists() const {
  std::lock_guard<std::mutex> l(mu_);
  return lists_;
}

int FakeFilesystem::writes() const {
  std::lock_guard<std::mutex> l(mu_);
  return writes_;
}

int FakeFilesystem::unsynced_writes() const {
  std::lock_guard<std::mutex> l(mu_);
  return unsynced_writes_;
}

Status FakeFilesystem::Fault(const std::map<std::string, Status>& faults,
                             const std::string& path) const {
  for (const auto& [prefix, error] : faults) {
    if (path.compare(0, prefix.size(), prefix) == 0) return error;
  }
  return Status::Ok();
}

StatusOr<std::vector<DirEntry>> FakeFilesystem::List(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  ++lists_;
  LM_RETURN_IF_ERROR(Fault(read_faults_, dir));
  auto it = nodes_.find(dir);
  if (it == nodes_.end()) return NotFound("open " + dir + ": No such file or directory");
  if (it->second.type != FileType::kDir) return Unavailable("open " + dir + ": Not a directory");
  std::vector<DirEntry> out;
  for (auto& [path, node] : nodes_) {
    if (Under(path, dir) && path.find('/', dir.size() + 1) == std::string::npos) {
      out.push_back({path.substr(dir.size() + 1), node.type});
    }
  }
  return out;
}

StatusOr<FileInfo> FakeFilesystem::Stat(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  LM_RETURN_IF_ERROR(Fault(read_faults_, path));
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return FileInfo{};
  return FileInfo{it->second.type, it->second.content.size(), it->second.mtime_ns,
                  it->second.inode};
}

StatusOr<std::string> FakeFilesystem::Read(const std::string& path, size_t max_bytes) {
  std::lock_guard<std::mutex> l(mu_);
  LM_RETURN_IF_ERROR(Fault(read_faults_, path));
  LM_RETURN_IF_ERROR(Fault(content_faults_, path));
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return NotFound("open " + path + ": No such file or directory");
  if (it->second.type != FileType::kFile) return Unavailable(path + ": not a regular file");
  if (it->second.content.size() > max_bytes) return ResourceExhausted(path + " is too large");
  return it->second.content;
}

Status FakeFilesystem::WriteAtomic(const std::string& path, std::string_view content, mode_t) {
  std::lock_guard<std::mutex> l(mu_);
  LM_RETURN_IF_ERROR(Replace(path, content));
  ++writes_;
  return Status::Ok();
}

Status FakeFilesystem::WriteAtomicNoSync(const std::string& path, std::string_view content,
                                         mode_t) {
  std::lock_guard<std::mutex> l(mu_);
  LM_RETURN_IF_ERROR(Replace(path, content));
  ++unsynced_writes_;
  return Status::Ok();
}

Status FakeFilesystem::Replace(const std::string& path, std::string_view content) {
  LM_RETURN_IF_ERROR(Fault(write_faults_, path));
  auto parent = nodes_.find(Parent(path));
  if (parent == nodes_.end() || parent->second.type != FileType::kDir) {
    return NotFound("create " + path + ": No such file or directory");
  }
  auto existing = nodes_.find(path);
  if (existing != nodes_.end() && existing->second.type == FileType::kDir) {
    return Unavailable("rename " + path + ": Is a directory");
  }
  Put(path, FileType::kFile, std::string(content));
  return Status::Ok();
}

Status FakeFilesystem::MakeDir(const std::string& path, mode_t) {
  std::lock_guard<std::mutex> l(mu_);
  LM_RETURN_IF_ERROR(Fault(write_faults_, path));
  auto it = nodes_.find(path);
  if (it != nodes_.end()) {
    return it->second.type == FileType::kDir ? Status::Ok() : Unavailable(path + ": exists");
  }
  if (!nodes_.count(Parent(path)) && Parent(path) != "/") return NotFound(path + ": no parent");
  Put(path, FileType::kDir, "");
  ++writes_;
  return Status::Ok();
}

Status FakeFilesystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(mu_);
  LM_RETURN_IF_ERROR(Fault(write_faults_, to));
  if (!nodes_.count(from)) return NotFound("rename " + from + ": No such file or directory");
  auto target = nodes_.find(to);
  if (target != nodes_.end() && target->second.type == FileType::kDir) {
    for (auto& [p, n] : nodes_) {
      if (Under(p, to)) return Unavailable("rename " + to + ": Directory not empty");
    }
  }
  std::map<std::string, Node> moved;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (it->first == from || Under(it->first, from)) {
      moved[to + it->first.substr(from.size())] = it->second;
      it = nodes_.erase(it);
    } else {
      ++it;
    }
  }
  nodes_.erase(to);
  for (auto& [p, n] : moved) nodes_[p] = n;
  ++writes_;
  return Status::Ok();
}

Status FakeFilesystem::RemoveAll(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  LM_RETURN_IF_ERROR(Fault(write_faults_, path));
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (it->first == path || Under(it->first, path)) {
      it = nodes_.erase(it);
    } else {
      ++it;
    }
  }
  ++writes_;
  return Status::Ok();
}

class FakeDirLock final : public DirLock {
 public:
  FakeDirLock(FakeFilesystem& fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}
  ~FakeDirLock() override {
    std::lock_guard<std::mutex> l(fs_.mu_);
    fs_.locks_.erase(dir_);
  }

 private:
  FakeFilesystem& fs_;
  std::string dir_;
};

StatusOr<std::unique_ptr<DirLock>> FakeFilesystem::TryLockDir(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  LM_RETURN_IF_ERROR(Fault(read_faults_, dir));
  auto it = nodes_.find(dir);
  if (it == nodes_.end() || it->second.type != FileType::kDir) {
    return NotFound("open " + dir + ": not a directory");
  }
  if (locks_.count(dir)) return FailedPrecondition(dir + " is locked by another process");
  locks_.insert(dir);
  return std::unique_ptr<DirLock>(new FakeDirLock(*this, dir));
}

bool FakeFilesystem::LockHeld(const std::string& dir) const {
  std::lock_guard<std::mutex> l(mu_);
  return locks_.count(dir) > 0;
}

}  // namespace lm::license
