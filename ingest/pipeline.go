package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// Defaults are the daemon's organization settings ([defaults] in the
// config); an organization's own setting wins over them.
type Defaults struct {
	Settle                 time.Duration // settle window; 0 = at once
	DeleteThresholdPercent float64       // SPEC §5 deletion guard: share of active users
	DeleteThresholdCount   int           // and count of users
	InactiveUsers          string        // "keep" or "delete"
	// Extra file name patterns (path.Match, case-insensitive) beside the
	// canonical names users.csv, user_groups.csv and groups.csv.
	UsersPatterns, UserGroupsPatterns, GroupsPatterns []string
}

// DefaultDefaults are the defaults of SPEC §5.
var DefaultDefaults = Defaults{Settle: 10 * time.Second, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"}

// Config configures a Pipeline. DB and OrgsRoot are required.
type Config struct {
	DB *state.DB
	// OrgsRoot holds one SFTP folder per organization; reports go to
	// ORG/reports/.
	OrgsRoot string
	// ArchiveRoot holds archive/ORG/BATCH/ copies; "" = OrgsRoot/../archive.
	ArchiveRoot string
	Defaults    Defaults
	Limits      schema.Limits
	// ReportsKept is how many batches' reports stay in ORG/reports/; 0 = 100.
	ReportsKept int
	// An organization's archive copies are kept while they are younger
	// than ArchiveKeep or among its newest ArchiveBatches, whichever keeps
	// more (held and unfinished batches always). ArchiveKeep 0 = 90 days,
	// negative = forever; ArchiveBatches 0 = 30.
	ArchiveKeep    time.Duration
	ArchiveBatches int
	// Disk space (SPEC §3; see Space): uploads are refused while the file
	// system of OrgsRoot, or of DataDir when it is another one, has less
	// free than MinFree bytes or MinFreePercent of its size, whichever is
	// larger (0 = DefaultMinFree, DefaultMinFreePercent), and while an
	// organization holds StorageQuota bytes (0 = DefaultStorageQuota,
	// negative = no quota; an organization's storage_quota setting wins).
	// Statfs reads a file system's free and total bytes; nil = statfs(2).
	DataDir        string
	MinFree        int64
	MinFreePercent float64
	StorageQuota   int64
	Statfs         func(path string) (avail, total uint64, err error)
	// OnApplied is called after a batch with events committed (it wakes
	// delivery); it must not block.
	OnApplied func(org string)
	Logger    *slog.Logger
	// Registerer receives the ingest metrics; nil = not registered.
	Registerer prometheus.Registerer
	// StageAbove is the number of changes above which a batch is applied
	// staged (state.ApplyBatchStaged: many bounded transactions, then one
	// that makes it visible) instead of in one transaction, whose memory
	// grows with the batch. 0 = DefaultStageAbove; negative = always.
	StageAbove int
	// StageTxChanges is the number of changes per staging transaction;
	// 0 = state.DefaultStageTxChanges.
	StageTxChanges int
	// RetryMin and RetryMax bound the wait before a batch that failed for
	// a reason outside its files runs again: RetryMin after the first
	// failure, doubling up to RetryMax (0 = DefaultRetryMin,
	// DefaultRetryMax). Tests shorten or lengthen them.
	RetryMin, RetryMax time.Duration
	// KeysRoot holds the organizations' OpenPGP keys (pgp_keys.go);
	// "" = OrgsRoot/../pgp.
	KeysRoot string
	// MaxCompressionRatio is how many times its size a compressed or
	// encrypted upload may expand (unwrap.go); 0 = DefaultMaxCompressionRatio.
	MaxCompressionRatio int
}

// Defaults of Config.RetryMin and Config.RetryMax.
const (
	DefaultRetryMin = 5 * time.Second
	DefaultRetryMax = 5 * time.Minute
)

// DefaultStageAbove is Config.StageAbove's default. A direct apply
// changes the snapshot's own pages, scattered over its whole key range,
// so it stays smaller than a staging transaction.
const DefaultStageAbove = 4096

func (p *Pipeline) stageAbove() int {
	switch n := p.cfg.StageAbove; {
	case n < 0:
		return -1
	case n == 0:
		return DefaultStageAbove
	default:
		return n
	}
}

// Pipeline turns completed uploads into applied batches (SPEC §5): one
// loop per organization settles notifications into batches and runs them
// strictly in order; organizations run in parallel. Its methods are safe
// for concurrent use.
type Pipeline struct {
	cfg     Config
	db      *state.DB
	log     *slog.Logger
	metrics *metrics

	pgpMu sync.Mutex // serializes changes to the OpenPGP key files
	space *Space

	mu       sync.Mutex
	defaults Defaults
	limits   schema.Limits
	quota    int64 // default storage quota
	loops    map[string]*orgLoop
	run      *runState // nil until Run starts and after it returns
}

// runState is what Run shares with the loops it starts.
type runState struct {
	ctx context.Context
	wg  sync.WaitGroup
}

// New returns a Pipeline; Run starts it.
func New(cfg Config) (*Pipeline, error) {
	if cfg.DB == nil || cfg.OrgsRoot == "" {
		return nil, errors.New("ingest: Config.DB and Config.OrgsRoot are required")
	}
	if cfg.ArchiveRoot == "" {
		cfg.ArchiveRoot = filepath.Join(filepath.Dir(filepath.Clean(cfg.OrgsRoot)), "archive")
	}
	if cfg.ReportsKept <= 0 {
		cfg.ReportsKept = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	switch {
	case cfg.ArchiveKeep == 0:
		cfg.ArchiveKeep = DefaultArchiveKeep
	case cfg.ArchiveKeep < 0:
		cfg.ArchiveKeep = 0 // forever
	}
	if cfg.ArchiveBatches <= 0 {
		cfg.ArchiveBatches = DefaultArchiveBatches
	}
	if cfg.StorageQuota == 0 {
		cfg.StorageQuota = DefaultStorageQuota
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		cfg: cfg, db: cfg.DB, log: cfg.Logger, metrics: m,
		defaults: cfg.Defaults, limits: cfg.Limits, quota: cfg.StorageQuota, loops: map[string]*orgLoop{},
	}
	p.space = newSpace(cfg, p.QuotaOf)
	if err := p.space.register(cfg.Registerer); err != nil {
		return nil, err
	}
	return p, nil
}

// Default archive retention (Config.ArchiveKeep, ArchiveBatches).
const (
	DefaultArchiveKeep    = 90 * 24 * time.Hour
	DefaultArchiveBatches = 30
)

// Space returns the pipeline's disk-space limits: what sftpd asks before
// and during uploads (sftpd.Storage) and /readyz asks (LowDisk).
func (p *Pipeline) Space() *Space { return p.space }

// QuotaOf is org's storage quota in bytes: its own setting, else the
// daemon's; 0 or less = none.
func (p *Pipeline) QuotaOf(org string) int64 {
	if o, err := p.db.Org(org); err == nil && o.Settings.StorageQuota != nil {
		return *o.Settings.StorageQuota
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.quota
}

// SetSpaceLimits replaces the free-space threshold and the default
// storage quota (SIGHUP reload), as Config's MinFree, MinFreePercent and
// StorageQuota.
func (p *Pipeline) SetSpaceLimits(minFree int64, minPercent float64, quota int64) {
	p.space.setLimits(minFree, minPercent)
	if quota == 0 {
		quota = DefaultStorageQuota
	}
	p.mu.Lock()
	p.quota = quota
	p.mu.Unlock()
}

// SetDefaults replaces the daemon defaults (SIGHUP reload); batches that
// start afterwards use them.
func (p *Pipeline) SetDefaults(d Defaults) {
	p.mu.Lock()
	p.defaults = d
	p.mu.Unlock()
}

// SetLimits replaces the file limits (SIGHUP reload); batches that start
// afterwards use them.
func (p *Pipeline) SetLimits(l schema.Limits) {
	p.mu.Lock()
	p.limits = l
	p.mu.Unlock()
}

func (p *Pipeline) currentLimits() schema.Limits {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limits
}

// settings are an organization's effective settings for one batch.
type settings struct {
	settle   time.Duration
	pct      float64
	count    int
	inactive string
	patterns map[schema.Kind][]string
	mapping  *schema.Mapping // nil: files are read as they come
	pgp      pgpSettings
}

// settingsFor resolves org's effective settings: its own value, else the
// daemon default.
func (p *Pipeline) settingsFor(org string) (settings, error) {
	o, err := p.db.Org(org)
	if err != nil {
		return settings{}, err
	}
	e := p.Defaults().Effective(o.Settings)
	s := settings{settle: e.Settle, pct: e.DeleteThresholdPercent, count: e.DeleteThresholdCount, inactive: e.InactiveUsers,
		patterns: map[schema.Kind][]string{
			schema.Users:      e.UsersPatterns,
			schema.UserGroups: e.UserGroupsPatterns,
			schema.Groups:     e.GroupsPatterns,
		}}
	// The API checked the mapping when it was set; one that no longer
	// compiles (a stored record edited by hand) is logged and not used.
	st := o.Settings
	if s.mapping, err = OrgMapping(st); err != nil {
		p.log.Error("organization mapping ignored: it is not valid", "org", org, "err", err)
	}
	s.pgp = p.pgpSettings(org, st)
	return s, nil
}

// OrgMapping compiles how an organization's exports are read from its
// settings: columns, status_values, date_format and groups_from_columns
// (SPEC §4, exports as they come). nil means as they come; the error is a
// *schema.MappingError naming each bad setting.
func OrgMapping(st state.Settings) (*schema.Mapping, error) {
	return schema.NewMapping(st.Columns, st.StatusValues, st.DateFormat, GroupColumns(st.GroupsFromColumns)...)
}

// GroupColumns converts the stored groups_from_columns into the schema's.
func GroupColumns(gs []state.GroupColumn) []schema.GroupColumn {
	out := make([]schema.GroupColumn, len(gs))
	for i, g := range gs {
		out[i] = schema.GroupColumn(g)
	}
	return out
}

// Defaults returns the daemon defaults in force.
func (p *Pipeline) Defaults() Defaults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.defaults
}

// Effective returns the settings in force for an organization whose own
// settings are own: each of its own values, else d's. A value the API
// would refuse (a bad settle duration) falls back to d's.
func (d Defaults) Effective(own state.Settings) Defaults {
	e := d
	if own.Settle != "" {
		if v, err := time.ParseDuration(own.Settle); err == nil && v >= 0 {
			e.Settle = v
		}
	}
	if own.DeleteThresholdPercent != nil {
		e.DeleteThresholdPercent = *own.DeleteThresholdPercent
	}
	if own.DeleteThresholdCount != nil {
		e.DeleteThresholdCount = *own.DeleteThresholdCount
	}
	if own.InactiveUsers != "" {
		e.InactiveUsers = own.InactiveUsers
	}
	if len(own.UsersPatterns) > 0 {
		e.UsersPatterns = own.UsersPatterns
	}
	if len(own.UserGroupsPatterns) > 0 {
		e.UserGroupsPatterns = own.UserGroupsPatterns
	}
	if len(own.GroupsPatterns) > 0 {
		e.GroupsPatterns = own.GroupsPatterns
	}
	return e
}

func (s settings) policy() policy {
	return policy{inactiveDelete: s.inactive == "delete", guard: true, pct: s.pct, count: s.count, mapping: s.mapping, decode: s.pgp.String()}
}

// kindOf says which kind of file name is for an organization: one of the
// canonical names (case-insensitive, SPEC §3) or a match of its patterns,
// for the name itself or, for a compressed or encrypted upload, the name
// without its suffixes (unwrap.go); kindZip for a zip of such files.
func (s settings) kindOf(name string) (schema.Kind, bool) {
	if k, ok := s.plainKindOf(name); ok {
		return k, true
	}
	return s.wrappedKindOf(name)
}

// plainKindOf is kindOf for the name as it is.
func (s settings) plainKindOf(name string) (schema.Kind, bool) {
	lower := strings.ToLower(name)
	for _, k := range []schema.Kind{schema.Users, schema.UserGroups, schema.Groups} {
		if lower == string(k)+".csv" {
			return k, true
		}
	}
	for _, k := range []schema.Kind{schema.UserGroups, schema.Users, schema.Groups} {
		for _, pat := range s.patterns[k] {
			if ok, _ := path.Match(strings.ToLower(pat), lower); ok {
				return k, true
			}
		}
	}
	return "", false
}

// Notify tells the pipeline that an upload of name completed in org's
// folder (sftpd.Uploads). It never blocks: the organization's loop settles
// it into the next batch.
func (p *Pipeline) Notify(org, name string) {
	p.note(org, name, true)
}

// note records a file for org's next batch. trusted files (completed
// uploads) are taken as they are; others (seen by the watcher or the
// start-up scan) only once their size and modification time stand still.
func (p *Pipeline) note(org, name string, trusted bool) {
	if strings.ContainsAny(name, `/\`) || name == "" || name[0] == '.' {
		return
	}
	p.loop(org).add(name, trusted)
}

// loop returns org's loop, creating it (and starting it when Run is
// running).
func (p *Pipeline) loop(org string) *orgLoop {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.loops[org]
	if l == nil {
		l = newOrgLoop(org, p)
		p.loops[org] = l
		if p.run != nil {
			p.startLoop(l)
		}
	}
	return l
}

// startLoop runs l under p.run; p.mu is held.
func (p *Pipeline) startLoop(l *orgLoop) {
	rs := p.run
	l.started = true
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		l.run(rs.ctx)
	}()
}

// Run starts the pipeline: it redoes batches a crash or shutdown
// interrupted, writes reports a crash kept from the disk, scans the
// organization folders for files that completed while the daemon was down,
// and watches them. On ctx done it lets each organization finish or
// cleanly abandon its batch in progress (an abandoned batch is redone at
// the next start), then returns.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := os.MkdirAll(p.cfg.OrgsRoot, 0o700); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	unfinished, err := p.db.UnfinishedBatches()
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	w, err := newWatcher(p)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	defer w.close()

	p.mu.Lock()
	if p.run != nil {
		p.mu.Unlock()
		return errors.New("ingest: Run called twice")
	}
	rs := &runState{ctx: ctx}
	p.run = rs
	p.mu.Unlock()

	// Before any apply: drop what a crash left staged, finish merges.
	if err := p.db.Recover(); err != nil {
		p.log.Error("recover staged applies", "err", err)
	}

	byOrg := map[string][]state.Batch{}
	for _, b := range unfinished { // oldest first per organization
		byOrg[b.Org] = append(byOrg[b.Org], b)
	}
	for org, bs := range byOrg {
		p.loop(org).resumeWith(bs)
	}
	orgs, err := p.db.Orgs("", 0)
	if err != nil {
		p.log.Error("list organizations", "err", err)
	}
	for _, o := range orgs {
		p.restoreReport(o.Name)
		w.addOrg(o.Name)
		p.forgetGone(o.Name, p.scan(o.Name))
	}
	p.mu.Lock()
	for _, l := range p.loops {
		if !l.started {
			p.startLoop(l)
		}
	}
	p.mu.Unlock()

	w.run(ctx)

	p.mu.Lock()
	p.run = nil
	p.mu.Unlock()
	rs.wg.Wait()
	p.mu.Lock()
	for _, l := range p.loops {
		l.started = false
	}
	p.mu.Unlock()
	return nil
}

// scan notes every file of org's folder that names a kind: files that
// may have completed while the daemon was down. The loop takes only
// completions not processed before (order.go). It returns the names in
// the folder (nil when it could not be read).
func (p *Pipeline) scan(org string) []string {
	s, err := p.settingsFor(org)
	if err != nil {
		return nil
	}
	dir, err := p.orgDir(org)
	if err != nil {
		if errors.Is(err, errFolderLink) {
			p.log.Warn("organization folder refused", "event", "refused", "org", org, "reason", err.Error())
		}
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
		if e.Type().IsRegular() {
			if _, ok := s.kindOf(e.Name()); ok {
				if fi, err := e.Info(); err == nil && linkCount(fi) > 1 {
					p.log.Warn("file refused", "event", "refused", "org", org, "file", e.Name(), "reason", errHardLink.Error())
					continue
				}
				p.note(org, e.Name(), false)
			}
		}
	}
	return names
}

// forgetGone drops org's completion records of names no longer in its
// folder (present, from scan): a file that appears under such a name is a
// new completion, so the record only grows with the folder.
func (p *Pipeline) forgetGone(org string, present []string) {
	if present == nil {
		return
	}
	done, err := p.db.Completions(org)
	if err != nil {
		return
	}
	here := make(map[string]bool, len(present))
	for _, n := range present {
		here[n] = true
	}
	var gone []string
	for name := range done.Files {
		if !here[name] {
			gone = append(gone, name)
		}
	}
	if err := p.db.ForgetCompletions(org, gone); err != nil {
		p.log.Warn("forget completions", "org", org, "err", err)
	}
}
