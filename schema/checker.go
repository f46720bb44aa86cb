package schema

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Checker validates one batch: at most one file of each kind, users first
// so that user_groups references can be checked against it. It keeps only
// what the uniqueness and reference checks need: a 64-bit hash and a line
// number per user_id, email, group name, group_id and membership (doc.go,
// Memory).
//
// A Checker is not safe for concurrent use.
type Checker struct {
	lim        Limits
	userExists func(id string) bool
	seed       maphash.Seed
	mapping    *Mapping
	read       []ColumnRead

	file   string
	nfile  int
	cur    *FileResult
	rowErr bool
	// The current row: whether one is open and its first line. An error
	// on an earlier line (the first row of a duplicate, found when the
	// window is flushed) marks that line in flagged instead.
	inRow    bool
	rowStart int
	flagged  map[int]struct{}
	utf8OK   bool // no invalid UTF-8 reported yet in this file

	held     issueHeap
	seq      int
	counts   map[string]int
	errors   int
	warnings int

	haveUsers   bool
	usersBroken bool // users.csv could not be read whole: skip reference checks
	userIDs     window
	emails      window
	groupNames  lineSet
	groupIDs    lineSet
	members     memberSet
	allGroups   lineSet
	groupTexts  []string // by group number: its name, once a callback has had it
	stats       Stats

	// groups_from_columns (derive.go): each rule's column in the users
	// file's header (-1: none), the memberships each gave, the current
	// row's group names, and the buffer a name is made in.
	ruleCols     []int
	derivedCount []int
	derived      []string
	nameBuf      []byte

	scratch []byte
	user    User
	member  Membership
	group   Group
}

// Stats counts what the valid rows of a batch hold: users, distinct groups
// (named in groups.csv or user_groups.csv) and distinct memberships. For a
// batch with errors the counts are approximate.
type Stats struct {
	Users       int
	Groups      int
	Memberships int
}

// NewChecker returns a Checker for one batch. userExists answers whether a
// user_id exists in the current snapshot; it is used only when the batch
// has no users file, and nil means that no user exists.
func NewChecker(lim Limits, userExists func(id string) bool) *Checker {
	return &Checker{
		lim:        lim.withDefaults(),
		userExists: userExists,
		seed:       maphash.MakeSeed(),
		counts:     make(map[string]int),
	}
}

// Stats returns the counts of the batch so far.
func (c *Checker) Stats() Stats {
	s := c.stats
	s.Groups = c.allGroups.len()
	return s
}

// SetMapping makes the Checker read the files that follow with an
// organization's mapping (nil: as they come). Call it before the first
// file.
func (c *Checker) SetMapping(m *Mapping) { c.mapping = m }

// Mapping returns the mapping set with SetMapping, or nil.
func (c *Checker) Mapping() *Mapping { return c.mapping }

// ColumnsRead says how the columns of each file were read under the
// mapping: for each file whose header the mapping changed, every column
// in header order. It is empty without a mapping or when no header had a
// mapped column.
func (c *Checker) ColumnsRead() []ColumnRead { return c.read }

// column is one header column.
type column struct {
	name   string // as in the header, trimmed
	key    string // lower case, for matching; a mapped column's target
	attr   string // the custom attribute's name (roleCustom)
	role   int
	mapped bool // the organization's mapping named it
}

const (
	roleIgnored = -1 // empty header name
	roleCustom  = -2
	roleDropped = -3 // dropped by the organization's mapping
	// roles >= 0 are the kind's own columns
)

// scan is the reading state of one file. The header is read from rd;
// the data rows come through p, on a second goroutine (pipe.go), and rec
// is the current one.
type scan struct {
	rd            *reader
	p             *pipe
	rec           *record
	view          record
	pos           int64 // bytes read up to the end of rec
	errLine       int   // the physical line where reading stopped
	cols          []column
	delim         byte
	size          int64 // bytes of the file (of its text as UTF-8, roughly), -1 = unknown
	headerEnd     int64 // bytes up to the end of the header
	presize       func(rows int)
	custom        int  // number of custom columns
	bad           bool // the header has an error: rows are not read
	unnamed       bool // the header has a column without a name
	warnedUnnamed bool
}

func delimName(d byte) string {
	switch d {
	case ';':
		return "semicolon"
	case '\t':
		return "tab"
	}
	return "comma"
}

// begin starts a new file and reads its header. It returns nil when the
// file cannot be read further (the reason is an issue).
func (c *Checker) begin(r io.Reader, file string, res *FileResult, roles map[string]int) (*scan, error) {
	c.file = file
	c.nfile++
	c.cur = res
	c.inRow, c.rowStart, c.flagged = false, 0, nil
	c.utf8OK = true
	size := remaining(r)
	br, enc := openText(&sizeReader{r: r, limit: c.lim.MaxFileSize})
	if enc == encUTF16LE || enc == encUTF16BE {
		size /= 2 // mostly ASCII text, as exports are
	}
	s := &scan{delim: detectDelimiter(br), size: size}
	s.rd = &reader{
		br:       br,
		delim:    s.delim,
		maxField: c.lim.MaxFieldSize,
		maxLine:  c.lim.MaxColumns * (c.lim.MaxFieldSize + 3),
	}
	s.rec = &s.rd.rec
	err := s.rd.next()
	s.errLine = s.rd.line
	if err == io.EOF {
		c.issue(0, "", nil, CodeEmptyFile, SeverityError,
			"the file is empty: its first line must name the columns, for example "+exampleHeader(roles))
		return nil, nil
	}
	if ok, err := c.fatal(s, err); !ok {
		return nil, err
	}
	rec := s.rec
	if bytes.HasPrefix(rec.buf, []byte("PK\x03\x04")) {
		c.issue(0, "", nil, CodeNotCSV, SeverityError,
			`this is an Excel workbook (.xlsx), not a CSV file: open it in Excel and use File > Save As > "CSV UTF-8 (Comma delimited) (*.csv)"`)
		return nil, nil
	}
	if bytes.IndexByte(rec.buf, 0) >= 0 {
		c.issue(0, "", nil, CodeNotCSV, SeverityError,
			"this is not a CSV text file (it contains zero bytes; it may be a binary file or UTF-16 text without a byte-order mark): save it as CSV in UTF-8")
		return nil, nil
	}
	if !utf8.Valid(rec.buf) {
		c.badUTF8(s, 0)
		return nil, nil
	}
	if rec.problem != probNone {
		c.rowProblem(s)
		return nil, nil
	}
	if n := len(rec.fields); n > c.lim.MaxColumns {
		c.issue(1, "", nil, CodeTooManyColumns, SeverityError,
			fmt.Sprintf("the header has %d columns; at most %d are allowed", n, c.lim.MaxColumns))
		return nil, nil
	}
	ok := true
	seen := make(map[string]int, len(rec.fields))
	mapped := false
	for i := range rec.fields {
		name := string(rec.value(i))
		col := c.headerColumn(name, roles)
		mapped = mapped || col.mapped
		s.cols = append(s.cols, col)
		switch col.role {
		case roleCustom:
			s.custom++
		case roleIgnored:
			s.unnamed = true
		}
		if col.role == roleIgnored || col.role == roleDropped {
			continue
		}
		canon := col.key
		if col.role >= 0 {
			canon = fmt.Sprint(col.role)
		}
		if j, dup := seen[canon]; dup {
			c.issue(1, name, nil, CodeDuplicateColumn, SeverityError, dupColumnMsg(s.cols[j], col, j, i))
			ok = false
			continue
		}
		seen[canon] = i
	}
	if mapped {
		for _, col := range s.cols {
			c.read = append(c.read, ColumnRead{File: file, Column: col.name, ReadAs: col.readAs()})
		}
	}
	s.bad = !ok
	s.headerEnd, s.pos = s.rd.pos, s.rd.pos
	return s, nil
}

// headerColumn reads one header name: through the organization's mapping
// when it names it, then as the kind's own column or a custom attribute.
// A mapped column is read as a column whose header is its target.
func (c *Checker) headerColumn(name string, roles map[string]int) column {
	col := column{name: name, key: strings.ToLower(name), role: roleCustom}
	if name == "" {
		col.role = roleIgnored
		return col
	}
	if t, ok := c.mapping.target(col.key); ok {
		col.mapped = true
		switch t.how {
		case mapDrop:
			col.role = roleDropped
			return col
		case mapCustom:
			col.key, col.attr = strings.ToLower(t.name), t.name
			return col
		}
		col.key = t.name
	}
	col.attr = name
	if col.mapped {
		col.attr = col.key
	}
	if r, known := roles[col.key]; known {
		col.role = r
	}
	return col
}

// dupColumnMsg is the message of column b (index j) that means the same as
// column a (index i) of the header.
func dupColumnMsg(a, b column, i, j int) string {
	switch {
	case a.mapped || b.mapped:
		return msgf("the columns %s and %s are read as the same column: leave one of them out of the export, or change the mapping", a.describe(i), b.describe(j))
	case a.key != b.key:
		return msgf("the columns %q (column %d) and %q (column %d) mean the same thing: keep only one of them", a.name, i+1, b.name, j+1)
	}
	return msgf("the column %q appears twice in the header (columns %d and %d): remove one of them", b.name, i+1, j+1)
}

// describe names column col, at index i, for a message.
func (col column) describe(i int) string {
	s := fmt.Sprintf("%q (column %d", col.name, i+1)
	if col.mapped {
		s += ", read as " + col.readAs() + " by the organization's mapping"
	}
	return s + ")"
}

// require reports the required columns that are missing from the header.
func (c *Checker) require(s *scan, roles map[string]int, required ...string) bool {
	ok := true
	for _, name := range required {
		role := roles[name]
		found := false
		for _, col := range s.cols {
			if col.role == role {
				found = true
				break
			}
		}
		if found {
			continue
		}
		ok = false
		msg := fmt.Sprintf("the header has no %s column, which is required", name)
		if srcs := c.mapping.Sources(name); len(srcs) > 0 {
			msg += msgf("; the organization's mapping reads %s as %s, and the header has no such column either", quoteOr(srcs), name)
		} else if near := s.lookalike(name); near != "" {
			msg += msgf(`; the column %q looks like it: rename it to %s`, near, name)
		}
		c.issue(1, name, nil, CodeMissingColumn, SeverityError, msg)
	}
	anyKnown := false
	for _, col := range s.cols {
		anyKnown = anyKnown || col.role >= 0
	}
	if !anyKnown && !ok {
		line := make([]string, len(s.cols))
		for i, col := range s.cols {
			line[i] = col.name
		}
		c.issue(1, "", []byte(strings.Join(line, string(s.delim))), CodeMissingColumn, SeverityError,
			fmt.Sprintf("the first line must name the columns (%s); this one does not look like a header (the file is read as %s-separated)",
				exampleHeader(roles), delimName(s.delim)))
	}
	return ok
}

// lookalike returns a header name that matches want when case, spaces and
// punctuation are ignored ("User ID" for user_id).
func (s *scan) lookalike(want string) string {
	w := squash(want)
	for _, col := range s.cols {
		if col.role == roleCustom && squash(col.key) == w {
			return col.name
		}
	}
	return ""
}

func squash(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func exampleHeader(roles map[string]int) string {
	switch {
	case roles["email"] != 0 || len(roles) > 5:
		return "user_id,email,first_name,last_name"
	case roles["description"] != 0:
		return "group_name,group_id,description"
	}
	return "group_name,user_id"
}

// fatal turns a reading error into an issue. It reports whether reading
// can go on, and returns the error when it is an I/O error.
func (c *Checker) fatal(s *scan, err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errFileTooLarge):
		c.issue(0, "", nil, CodeFileTooLarge, SeverityError,
			fmt.Sprintf("the file is larger than the limit of %s: split it or ask the operator to raise the limit", sizeText(c.lim.MaxFileSize)))
	case errors.As(err, new(*InputError)):
		var ie *InputError
		errors.As(err, &ie)
		c.issue(0, "", nil, ie.Code, SeverityError, ie.Message)
	case errors.Is(err, errLineTooLong):
		c.issue(s.errLine, "", nil, CodeLineTooLong, SeverityError,
			fmt.Sprintf("this line is longer than any valid row could be (over %s); the file is probably not a CSV export", sizeText(int64(s.rd.maxLine))))
	default:
		return false, fmt.Errorf("read %s: %w", c.file, err)
	}
	return false, nil
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// endRow counts the row just read among the rows with errors if it has
// one (FileResult.ErrorRows).
func (c *Checker) endRow() {
	if c.inRow && c.rowErr {
		c.countErrorRow(c.rowStart)
	}
	c.inRow = false
}

// flagRow counts an earlier row that an issue found later gave an error,
// once however many issues name it.
func (c *Checker) flagRow(line int) {
	if _, dup := c.flagged[line]; dup {
		return
	}
	if c.flagged == nil {
		c.flagged = map[int]struct{}{}
	}
	c.flagged[line] = struct{}{}
	c.countErrorRow(line)
}

func (c *Checker) countErrorRow(line int) {
	if c.cur.ErrorRows < c.cur.Rows {
		c.cur.ErrorRows++
	}
}

// next reads the next data row. It returns false at the end of the file or
// when the file cannot be read further. On true, c.rowErr tells whether the
// row already has an error that makes its fields unusable (rules are then
// skipped).
func (c *Checker) next(s *scan) (ok, usable bool, err error) {
	c.endRow()
	if s.p == nil {
		s.p, s.rec = startPipe(s.rd), &s.view
	}
	s.errLine, err = s.p.read(&s.view, &s.pos)
	if err == io.EOF {
		return false, false, nil
	}
	if ok, err := c.fatal(s, err); !ok {
		return false, false, err
	}
	rec := s.rec
	c.cur.Rows++
	c.rowErr = false
	c.inRow, c.rowStart = true, rec.line
	if c.cur.Rows == estimateAfter && s.presize != nil {
		if n := s.estimate(c.cur.Rows); n > 0 {
			s.presize(n)
		}
	}
	if rec.problem != probNone {
		c.rowProblem(s)
		return true, false, nil
	}
	if n, want := len(rec.fields), len(s.cols); n != want {
		if n < want || !emptyFrom(rec, want) {
			c.issue(rec.line, "", nil, CodeWrongFieldCount, SeverityError, fieldCountMsg(n, want, s.delim))
			return true, false, nil
		}
		rec.fields = rec.fields[:want]
	}
	if !rec.valid && c.utf8OK {
		c.badUTF8(s, 1)
	} else if !c.utf8OK && !rec.valid {
		c.rowErr = true
	}
	if s.unnamed && !s.warnedUnnamed {
		for i, col := range s.cols {
			if col.role == roleIgnored && rec.fields[i].end > rec.fields[i].start {
				s.warnedUnnamed = true
				c.issue(rec.fields[i].line, "", rec.value(i), CodeUnnamedColumn, SeverityWarning,
					fmt.Sprintf("column %d has no name in the header, so its values are ignored (this is the first row with one): name the column or remove it", i+1))
				break
			}
		}
	}
	return true, true, nil
}

// close stops the reading goroutine of s, if it runs, and waits for it.
func (s *scan) close() {
	if s.p != nil {
		s.p.close()
		s.p = nil
	}
}

func emptyFrom(rec *record, i int) bool {
	for _, f := range rec.fields[i:] {
		if f.end > f.start {
			return false
		}
	}
	return true
}

func fieldCountMsg(n, want int, delim byte) string {
	if n > want {
		return fmt.Sprintf("this row has %d values but the header has %d columns: a value that contains a %s must be put in double quotes, for example \"Smith, Jr.\"", n, want, delimName(delim))
	}
	return fmt.Sprintf("this row has %d values but the header has %d columns: every row needs one value (possibly empty) per column", n, want)
}

// rowProblem reports why the current record could not be read.
func (c *Checker) rowProblem(s *scan) {
	rec := s.rec
	col := ""
	if rec.probAt >= 0 && rec.probAt < len(s.cols) {
		col = s.cols[rec.probAt].name
	}
	var val []byte
	if rec.probAt >= 0 && rec.probAt < len(rec.fields) {
		val = rec.value(rec.probAt)
	}
	switch rec.problem {
	case probQuote:
		c.issue(rec.probLn, col, val, CodeBadQuote, SeverityError,
			"a value in double quotes is followed by more text before the next "+delimName(s.delim)+
				`: inside a quoted value, write a double quote as two double quotes ("")`)
	case probUnterminated:
		c.issue(rec.probLn, col, nil, CodeUnclosedQuote, SeverityError,
			"a value starts with a double quote that is never closed, so the rest of the file was read as part of it: add the closing quote")
	case probFieldTooLong:
		c.issue(rec.probLn, col, val, CodeFieldTooLong, SeverityError,
			fmt.Sprintf("this value is longer than the limit of %s", sizeText(int64(c.lim.MaxFieldSize))))
	}
}

// badUTF8 reports the first row that is not UTF-8 text, once per file.
func (c *Checker) badUTF8(s *scan, from int) {
	rec := s.rec
	c.utf8OK = false
	i := 0
	for i = range rec.fields {
		if !utf8.Valid(rec.value(i)) {
			break
		}
	}
	col := ""
	if i < len(s.cols) && from > 0 {
		col = s.cols[i].name
	}
	line := rec.line
	var val []byte
	if i < len(rec.fields) {
		line = rec.fields[i].line
		val = rec.value(i)
	}
	msg := "this file is not UTF-8 text (first found on this line; later lines are not listed): "
	if w, err := charmap.Windows1252.NewDecoder().Bytes(val); err == nil && len(val) > 0 {
		msg += msgf("it was probably saved as Windows-1252/ANSI, where this value reads %q. ", w)
	}
	msg += `Save it again as UTF-8: in Excel choose File > Save As > "CSV UTF-8 (Comma delimited) (*.csv)"; in LibreOffice tick "Edit filter settings" and pick "Unicode (UTF-8)"`
	c.issue(line, col, val, CodeInvalidUTF8, SeverityError, msg)
}

// hash returns the 64-bit hash of b.
func (c *Checker) hash(b []byte) uint64 { return maphash.Bytes(c.seed, b) }

// hashFold returns the hash of b in lower case, without allocating. fold
// is false when b has no upper-case or non-ASCII letter (checkEmail tells),
// and b is then its own lower case.
func (c *Checker) hashFold(b []byte, fold bool) uint64 {
	if !fold {
		return c.hash(b)
	}
	c.scratch = appendLower(c.scratch[:0], b)
	return c.hash(c.scratch)
}

// line32 clamps a line number to what the sets store.
func line32(n int) int32 {
	if n > 1<<31-1 {
		return 1<<31 - 1
	}
	return int32(n)
}

// firstSeen records key at line in set. When key was seen before, it
// returns that line and whether that earlier line has already been given
// its own duplicate issue (it is marked as given by this call).
func firstSeen(set *lineSet, key uint64, line int) (prev int, reported bool, dup bool) {
	sl := set.put(key, line32(line))
	if sl == nil {
		return 0, false, false
	}
	if sl.line < 0 {
		return int(-sl.line), true, true
	}
	sl.line = -sl.line
	return int(-sl.line), false, true
}
