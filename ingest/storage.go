package ingest

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SPEC §3 limits on disk space: uploads are refused while the file system
// holding the organization folders (or the data directory, when that is
// another one) has less free space than a threshold, and while an
// organization's storage (its folder, its reports and its archive) is at
// its quota. Space.Admit is what sftpd asks (sftpd.Storage); /readyz asks
// LowDisk.

// Defaults of the disk-space limits.
const (
	DefaultMinFree        = 1 << 30 // bytes
	DefaultMinFreePercent = 5.0
	DefaultStorageQuota   = 10 << 30 // bytes per organization
)

// Errors of Space.Admit; their text goes to the SFTP client.
var (
	ErrLowDisk = errors.New("the server is low on disk space; try again later")
	ErrQuota   = errors.New("this organization's storage quota is used up")
)

// quotaError is ErrQuota with the figures, as the client reads it.
type quotaError struct{ quota, folder, archive int64 }

func (e *quotaError) Error() string {
	return fmt.Sprintf("this organization's storage quota of %s is used up: %s in use (%s in the SFTP folder and its reports, %s in the server's archive of past uploads); remove files you no longer need, or ask the operator to raise the quota",
		sizeText(e.quota), sizeText(e.folder+e.archive), sizeText(e.folder), sizeText(e.archive))
}

func (e *quotaError) Unwrap() error { return ErrQuota }

// folderTTL is how long a walk of an organization's folder is trusted;
// what the organization's uploads were admitted for since is added to it.
const folderTTL = time.Second

// Space keeps the disk-space limits. Its methods are safe for concurrent
// use. Usage is counted in allocated blocks (what the disk loses: a sparse
// file costs what it holds), and a file hard-linked into several batches'
// archive folders (a file taken over, order.go) once. An organization's
// archive and reports are
// walked once, at its first admission, then kept up to date as batches
// archive, report and prune; its folder is walked at most once per
// folderTTL, and the admissions since are added to it, so that a check
// costs a statfs and, now and then, a listing of one folder.
type Space struct {
	orgsRoot, archiveRoot string
	paths                 []spacePath
	quotaOf               func(org string) int64
	statfs                func(path string) (avail, total uint64, err error)
	now                   func() time.Time

	mu         sync.Mutex
	minFree    int64
	minPercent float64
	orgs       map[string]*orgUsage
}

// spacePath is a file system Space watches, named for the metric.
type spacePath struct{ name, path string }

func (p spacePath) label() string {
	if p.name == "orgs" {
		return "organization folders'"
	}
	return "data directory's"
}

// lowDiskError is ErrLowDisk with the figures, for the operator.
type lowDiskError struct{ msg string }

func (e *lowDiskError) Error() string { return e.msg }
func (e *lowDiskError) Unwrap() error { return ErrLowDisk }

// orgUsage is what one organization holds on disk.
type orgUsage struct {
	// archive lists the files of each batch's archive/ORG/BATCH/; a file
	// taken over from another batch is a hard link to that batch's copy,
	// so the sum is over distinct files: links counts the batches that
	// hold each, archived the allocated bytes of those held at all.
	archive  map[string]map[fileID]int64
	links    map[fileID]int
	archived int64
	reports  int64 // ORG/reports/
	folder   int64 // ORG/ but reports/, at folderAt
	folderAt time.Time
	grown    int64 // admitted since folderAt
}

// fileID is a file's identity on its file system: hard links share it.
type fileID struct{ dev, ino uint64 }

// setBatch replaces what u counts for batch's archive folder by files.
func (u *orgUsage) setBatch(batch string, files map[fileID]int64) {
	for id, n := range u.archive[batch] {
		if u.links[id]--; u.links[id] == 0 {
			delete(u.links, id)
			u.archived -= n
		}
	}
	delete(u.archive, batch)
	for id, n := range files {
		if u.links[id]++; u.links[id] == 1 {
			u.archived += n
		}
	}
	if len(files) > 0 {
		u.archive[batch] = files
	}
}

// newSpace returns the Space of a pipeline's Config.
func newSpace(cfg Config, quotaOf func(string) int64) *Space {
	s := &Space{
		orgsRoot: cfg.OrgsRoot, archiveRoot: cfg.ArchiveRoot,
		quotaOf: quotaOf, statfs: cfg.Statfs, now: time.Now,
		orgs: map[string]*orgUsage{},
	}
	s.setLimits(cfg.MinFree, cfg.MinFreePercent)
	if s.statfs == nil {
		s.statfs = statfs
	}
	s.paths = []spacePath{{"orgs", cfg.OrgsRoot}}
	if cfg.DataDir != "" && !sameDevice(cfg.DataDir, cfg.OrgsRoot) {
		s.paths = append(s.paths, spacePath{"data", cfg.DataDir})
	}
	return s
}

// setLimits sets the free-space threshold; 0 = the default, negative =
// none.
func (s *Space) setLimits(minFree int64, minPercent float64) {
	if minFree == 0 {
		minFree = DefaultMinFree
	}
	if minPercent == 0 {
		minPercent = DefaultMinFreePercent
	}
	s.mu.Lock()
	s.minFree, s.minPercent = max(minFree, 0), max(minPercent, 0)
	s.mu.Unlock()
}

// register adds rosterd_disk_free_bytes and rosterd_disk_min_free_bytes
// for each watched file system.
func (s *Space) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, p := range s.paths {
		p := p
		free := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rosterd_disk_free_bytes", Help: "Free space for rosterd on the file system of the organization folders (fs=orgs) or of the data directory (fs=data).",
			ConstLabels: prometheus.Labels{"fs": p.name},
		}, func() float64 {
			avail, _, err := s.statfs(p.path)
			if err != nil {
				return -1
			}
			return float64(avail)
		})
		floor := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rosterd_disk_min_free_bytes", Help: "Free space below which uploads are refused ([limits] min_free_space, min_free_percent).",
			ConstLabels: prometheus.Labels{"fs": p.name},
		}, func() float64 {
			_, total, err := s.statfs(p.path)
			if err != nil {
				return -1
			}
			return float64(s.threshold(total))
		})
		for _, c := range []prometheus.Collector{free, floor} {
			if err := reg.Register(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// threshold is the free space below which uploads are refused on a file
// system of total bytes: MinFree or MinFreePercent of it, the larger.
func (s *Space) threshold(total uint64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.minFree, int64(float64(total)*s.minPercent/100))
}

// LowDisk returns nil when every watched file system has room, else why
// not (for /readyz). It costs one statfs per file system.
func (s *Space) LowDisk() error {
	return s.checkFree(0)
}

func (s *Space) checkFree(grow int64) error {
	for _, p := range s.paths {
		avail, total, err := s.statfs(p.path)
		if err != nil {
			return &lowDiskError{fmt.Sprintf("the free space of the %s file system cannot be read: %v", p.label(), err)}
		}
		if int64(avail)-grow < s.threshold(total) {
			return &lowDiskError{fmt.Sprintf("low disk space: %s free on the %s file system, below the %s kept free ([limits] min_free_space, min_free_percent); uploads are refused",
				sizeText(int64(avail)), p.label(), sizeText(s.threshold(total)))}
		}
	}
	return nil
}

// Admit says whether org may store grow more bytes: an upload asks at
// open (grow 0) and before each few MiB it writes (sftpd.Storage). The
// error's text is for the SFTP client: ErrLowDisk, or ErrQuota with the
// figures. An admitted grow counts against the quota until the next walk
// of the folder sees what was written.
func (s *Space) Admit(org string, grow int64) error {
	if err := s.checkFree(grow); err != nil {
		return ErrLowDisk // the figures are for the operator (LowDisk), not the client
	}
	quota := s.quotaOf(org)
	if quota <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.usage(org)
	if err != nil {
		return err
	}
	folder := u.folder + u.grown + u.reports
	if used := folder + u.archived; used+grow > quota || grow == 0 && used >= quota {
		return &quotaError{quota: quota, folder: folder, archive: u.archived}
	}
	u.grown += grow
	return nil
}

// Used returns what org holds on disk: its folder with its reports, and
// its archive.
func (s *Space) Used(org string) (folder, archive int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.usage(org)
	if err != nil {
		return 0, 0, err
	}
	return u.folder + u.grown + u.reports, u.archived, nil
}

// usage returns org's usage, walking what is not known or too old. s.mu
// is held.
func (s *Space) usage(org string) (*orgUsage, error) {
	u := s.orgs[org]
	if u == nil {
		u = &orgUsage{archive: map[string]map[fileID]int64{}, links: map[fileID]int{}}
		ents, err := os.ReadDir(filepath.Join(s.archiveRoot, org))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("archive of %s: %w", org, err)
		}
		for _, e := range ents {
			if e.IsDir() {
				u.setBatch(e.Name(), archiveFiles(filepath.Join(s.archiveRoot, org, e.Name())))
			}
		}
		u.reports = dirUsage(filepath.Join(s.orgsRoot, org, "reports"))
		s.orgs[org] = u
	}
	if now := s.now(); now.Sub(u.folderAt) >= folderTTL {
		u.folder, u.folderAt, u.grown = dirUsage(filepath.Join(s.orgsRoot, org)), now, 0
	}
	return u, nil
}

// archiveChanged counts archive/ORG/BATCH again (files archived, a report
// written into it, the folder removed).
func (s *Space) archiveChanged(org, batch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.orgs[org]
	if u == nil {
		return // walked at the organization's first admission
	}
	u.setBatch(batch, archiveFiles(filepath.Join(s.archiveRoot, org, batch)))
}

// reportsChanged counts ORG/reports/ again.
func (s *Space) reportsChanged(org string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.orgs[org]; u != nil {
		u.reports = dirUsage(filepath.Join(s.orgsRoot, org, "reports"))
	}
}

// dirUsage is the allocated size of the regular files directly in dir
// (0 when it does not exist).
func dirUsage(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n += allocated(fi)
		}
	}
	return n
}

// archiveFiles returns the regular files under a batch's archive folder
// dir (the files taken over are in its from/ folders) by identity, with
// their allocated sizes; none when it does not exist.
func archiveFiles(dir string) map[fileID]int64 {
	out := map[fileID]int64{}
	filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		var id fileID
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			id = fileID{uint64(st.Dev), st.Ino}
		} else { // no inodes: each path counts
			h := fnv.New64a()
			h.Write([]byte(path))
			id = fileID{^uint64(0), h.Sum64()}
		}
		out[id] = allocated(fi)
		return nil
	})
	return out
}

// allocated is the disk space a file takes: its blocks, not its size.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

func statfs(path string) (avail, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return st.Bavail * bs, st.Blocks * bs, nil
}

// sameDevice reports whether a and b are on the same file system (true
// when either cannot be checked: nothing more to watch).
func sameDevice(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return true
	}
	sa, ok1 := fa.Sys().(*syscall.Stat_t)
	sb, ok2 := fb.Sys().(*syscall.Stat_t)
	return !ok1 || !ok2 || sa.Dev == sb.Dev
}

// sizeText writes n bytes for people: "10 GiB", "512 MiB", "1.5 GiB".
func sizeText(n int64) string {
	units := []struct {
		s string
		v int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n >= u.v {
			s := fmt.Sprintf("%.1f", float64(n)/float64(u.v))
			return strings.TrimSuffix(s, ".0") + " " + u.s
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
