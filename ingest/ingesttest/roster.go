// Package ingesttest generates organization exports (users.csv,
// user_groups.csv, groups.csv) shaped like real directory exports, for
// ingest's tests and `rosterbench ingest`:
//
//   - user ids as directories issue them, in random order: UUIDs (Entra
//     ID), "00u" and 17 base62 characters (Okta), numeric employee ids
//     with gaps;
//   - rows sorted by last name (the default), by department, or not at
//     all; user_groups.csv in the users' order, by group, or shuffled;
//   - 23 columns: every known one of SPEC §4, status, and two custom ones
//     with non-ASCII names; quoted commas in display names and streets; a
//     manager_id that points at another user;
//   - about 10,000 groups per million users with heavy-tailed sizes: "All
//     Employees" with everyone, three countries with 10 to 18 % each,
//     departments of hundreds to thousands, and thousands of small teams
//     and projects; 2 to 5 groups per user (3 on average); group names
//     with spaces, commas and non-ASCII.
//
// A Roster is one day's export; Next derives the next day's with known
// changes (a working day, a reorganization, a day of deactivations).
// Everything follows from the Shape and the seeds: the same arguments
// give the same bytes.
//
// It imports no rosterd package, so ingest's own tests can use it.
package ingesttest

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// IDStyle is how a directory issues user ids.
type IDStyle int

// The id styles. Mixed gives each user one of the three (half UUIDs, three
// tenths Okta ids, a fifth numeric), as an organization that merged
// directories has.
const (
	Mixed IDStyle = iota
	UUID
	Okta
	Numeric
)

// RowOrder is the order of users.csv's rows.
type RowOrder int

// The row orders.
const (
	ByLastName   RowOrder = iota // last name, then first name
	ByDepartment                 // department, then last name
	Unsorted                     // random
)

// MemberOrder is the order of user_groups.csv's rows.
type MemberOrder int

// The membership orders.
const (
	ByUser   MemberOrder = iota // each user's groups together, users in users.csv's order
	ByGroup                     // each group's members together, groups in groups.csv's order
	Shuffled                    // random
)

// Shape says what an export looks like. The zero value of each field but
// Users is the default.
type Shape struct {
	Users   int
	Seed    uint64
	IDs     IDStyle
	Rows    RowOrder
	Members MemberOrder
}

// Roster is one day's export of an organization.
type Roster struct {
	shape   Shape
	users   []user // in creation order; gone users stay, marked
	depts   []dept
	teams   []team
	nextNum int // the next numeric employee id, before its gap
	day     int
}

type user struct {
	id          string
	seq         int32 // creation number: usernames and emails
	first, last int32 // indexes into firstNames, lastNames()
	dept        int32
	country     int8 // index into countries
	site        int16
	title       int16
	senior      bool
	manager     int32 // user index, -1 = none
	teams       [2]int32
	start       uint16 // days since 2000-01-01
	lang        uint8
	inactive    bool
	gone        bool
}

type dept struct {
	name, id string // id "" = derived by rosterd
	division int
	weight   float64
}

type team struct {
	name   string
	weight float64
	gone   bool
}

// Pools of values. Names carry the non-ASCII of real directories.
var (
	firstNames = []string{"Ana", "Bjørn", "Chloé", "Dmitri", "Émile", "Fátima", "Günter", "Hiroshi", "Ingrid", "José",
		"Zoë", "Łukasz", "Søren", "Ólafur", "Nguyễn", "Aoife", "Björk", "Çağla", "Dagný", "Eliška", "François", "Grzegorz",
		"Håkon", "Iñaki", "Jürgen", "Kateřina", "Leïla", "Małgorzata", "Noémie", "Oğuz", "Pål", "Renée", "Siobhán",
		"Tomáš", "Úna", "Vít", "Wojciech", "Yusuf", "Zsófia", "Mary", "John", "Wei", "Priya", "Ahmed", "Lucía"}
	lastRoots = []string{"Müller", "García", "Østergaard", "Nowak", "Dubois", "Rossi", "Smith", "Kowalski", "Novák",
		"Fernández", "Åberg", "Papadopoulos", "Yılmaz", "O'Brien", "Van der Berg", "Ng", "Schäfer", "López", "Mäkinen",
		"Horváth", "Jensen", "Lefèvre", "Szabó", "Čapek", "Żukowski", "Nakamura", "Björnsson", "Duarte", "Ivanova", "Kim"}
	lastSuffixes = []string{"", "-Lange", "son", "ová", "ez", "i", "sen", "ski", "ović", "escu", "eau", "berg"}
	divisions    = []string{"Ventes, Europe", "Forschung & Entwicklung", "Operações", "Finance", "Logística, Süd", "Støtte", "Marketing", "Produktion"}
	deptWords    = []string{"Comptabilité", "Einkauf", "Qualität", "Vertrieb", "Recursos humanos", "Juridique", "Kundenservice", "Développement", "Infrastructure", "Sécurité"}
	teamWords    = []string{"Team Ωmega", "Projekt „Süd, West“", "Squad Ærø", "Équipe Île", "Project Phoenix, Phase", "Grupo Ñandú", "Tiger team", "Arbeitsgruppe Öko"}
	jobTitles    = []string{"Ingénieure", "Software Engineer", "Sachbearbeiter", "Analyst, Finance", "Vendedor", "Responsable RH", "Team Lead", "Directeur général", "Técnico", "Consultant"}
	types        = []string{"Full-time", "Part-time", "Contractor", "Intern"}
	langs        = []string{"de", "fr", "es", "pt", "en", "it", "pl", "nb", "ja", "tr"}
	streets      = []string{"Hauptstraße", "Rue de la Paix", "Calle Mayor", "Ulica Długa", "Øster Allé", "Via Roma", "Main Street", "Rua Augusta"}
	cities       = []string{"München", "Zürich", "Málaga", "Kraków", "København", "São Paulo", "Lyon", "Tōkyō", "Göteborg", "İzmir", "Brno", "Reykjavík"}
	regions      = []string{"Bayern", "Île-de-France", "Andalucía", "Małopolska", "Hovedstaden", "Lombardia", "Ontario", "Kantō"}
)

// countries and the share of users in each; the first three have a group
// each (the few groups of 10 to 20 % of users).
var countries = []struct {
	code, group string
	share       float64
}{
	{"DE", "Pays: Deutschland", 0.18}, {"ES", "Pays: España", 0.12}, {"AT", "Pays: Österreich", 0.10},
	{"FR", "", 0.2}, {"PL", "", 0.1}, {"US", "", 0.12}, {"JP", "", 0.08}, {"BR", "", 0.1},
}

const countryGroups = 3

// AllEmployees is the name of the group of every user.
const AllEmployees = "All Employees"

// New returns day 1 of an organization of the given shape.
func New(s Shape) *Roster {
	rng := rand.New(rand.NewPCG(s.Seed, 0x5eed))
	r := &Roster{shape: s, nextNum: 100000 + rng.IntN(900000)}
	n := max(s.Users, 1)
	nd := max(3, n/2000)
	for i := range nd {
		d := dept{
			name:     fmt.Sprintf("%s %d – %s", deptWords[i%len(deptWords)], i, divisions[i%len(divisions)]),
			division: i % len(divisions),
			weight:   math.Exp(rng.NormFloat64() * 0.9),
		}
		if i%2 == 0 {
			d.id = "grp-" + uuid(rng)
		}
		r.depts = append(r.depts, d)
	}
	nt := max(2, n*100/10500)
	for i := range nt {
		r.teams = append(r.teams, r.newTeam(rng, i))
	}
	deptPick, teamPick := r.deptPicker(), r.teamPicker()
	r.users = make([]user, 0, n)
	for range s.Users {
		r.users = append(r.users, r.newUser(rng, deptPick, teamPick))
	}
	return r
}

func (r *Roster) newTeam(rng *rand.Rand, i int) team {
	// Log-normal sizes: most teams of a few dozen, some of hundreds.
	return team{name: fmt.Sprintf("%s %d", teamWords[i%len(teamWords)], i), weight: math.Exp(rng.NormFloat64() * 1.0)}
}

// picker draws an index with probability proportional to its weight.
type picker []float64 // cumulative weights

func newPicker(w []float64) picker {
	c := make(picker, len(w))
	sum := 0.0
	for i, x := range w {
		sum += x
		c[i] = sum
	}
	return c
}

func (p picker) pick(rng *rand.Rand) int {
	x := rng.Float64() * p[len(p)-1]
	i, _ := slices.BinarySearch(p, x)
	return min(i, len(p)-1)
}

func (r *Roster) deptPicker() picker {
	w := make([]float64, len(r.depts))
	for i, d := range r.depts {
		w[i] = d.weight
	}
	return newPicker(w)
}

func (r *Roster) teamPicker() picker {
	w := make([]float64, len(r.teams))
	for i, t := range r.teams {
		if !t.gone {
			w[i] = t.weight
		}
	}
	return newPicker(w)
}

var countryPick = func() picker {
	w := make([]float64, len(countries))
	for i, c := range countries {
		w[i] = c.share
	}
	return newPicker(w)
}()

// lastName returns the i-th last name; lower indexes are more common
// (newUser draws them from a Zipf distribution).
func lastName(i int32) string {
	return lastRoots[int(i)%len(lastRoots)] + lastSuffixes[int(i)/len(lastRoots)%len(lastSuffixes)]
}

const numLastNames = 30 * 12

func (r *Roster) newUser(rng *rand.Rand, deptPick, teamPick picker) user {
	seq := int32(len(r.users))
	u := user{
		id:      r.newID(rng),
		seq:     seq,
		first:   int32(rng.IntN(len(firstNames))),
		last:    int32(zipf(rng, numLastNames)),
		dept:    int32(deptPick.pick(rng)),
		country: int8(countryPick.pick(rng)),
		site:    int16(rng.IntN(len(cities))),
		title:   int16(rng.IntN(len(jobTitles))),
		manager: -1,
		teams:   [2]int32{-1, -1},
		start:   uint16(rng.IntN(9000)),
		lang:    uint8(rng.IntN(len(langs))),
	}
	if seq > 0 {
		u.manager = int32(rng.IntN(int(seq))) // someone hired before
	}
	switch x := rng.IntN(100); {
	case x < 35:
		u.teams[0] = int32(teamPick.pick(rng))
	case x < 50:
		u.teams[0] = int32(teamPick.pick(rng))
		if t := int32(teamPick.pick(rng)); t != u.teams[0] {
			u.teams[1] = t
		}
	}
	return u
}

// zipf returns a number in [0, n) with P(k) ~ 1/(k+1).
func zipf(rng *rand.Rand, n int) int {
	// Inverse of the continuous approximation: k = n^u - 1.
	return min(n-1, int(math.Pow(float64(n), rng.Float64()))-1)
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func uuid(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[x>>4], hex[x&15])
	}
	return string(out)
}

func (r *Roster) newID(rng *rand.Rand) string {
	style := r.shape.IDs
	if style == Mixed {
		switch x := rng.IntN(10); {
		case x < 5:
			style = UUID
		case x < 8:
			style = Okta
		default:
			style = Numeric
		}
	}
	switch style {
	case UUID:
		return uuid(rng)
	case Okta:
		b := []byte("00u")
		for range 17 {
			b = append(b, base62[rng.IntN(62)])
		}
		return string(b)
	default:
		r.nextNum += 1 + rng.IntN(7) // ids of people who never joined, or left long ago
		return strconv.Itoa(r.nextNum)
	}
}

// ChangeKind is what kind of day Next makes.
type ChangeKind int

// The kinds of day.
const (
	// Workday changes a share of the users: a third get new attributes,
	// a third move to another department or team, a sixth leave and as
	// many are hired.
	Workday ChangeKind = iota
	// Reorg moves a share of the users to other departments and teams;
	// some teams end and new ones start.
	Reorg
	// Deactivate sets a share of the users inactive.
	Deactivate
)

// Next returns the next day's export: r with the changes of kind on a
// share (0 to 1) of the users, drawn from seed. r is not changed.
func (r *Roster) Next(kind ChangeKind, share float64, seed uint64) *Roster {
	rng := rand.New(rand.NewPCG(r.shape.Seed^seed, uint64(r.day+1)))
	n := &Roster{shape: r.shape, nextNum: r.nextNum, day: r.day + 1,
		users: slices.Clone(r.users), depts: slices.Clone(r.depts), teams: slices.Clone(r.teams)}
	if kind == Reorg {
		// A tenth of the teams end; as many start.
		for i := range n.teams {
			if !n.teams[i].gone && rng.IntN(10) == 0 {
				n.teams[i].gone = true
				n.teams = append(n.teams, n.newTeam(rng, len(n.teams)))
			}
		}
	}
	deptPick, teamPick := n.deptPicker(), n.teamPicker()
	live := len(n.users)
	for i := range live {
		u := &n.users[i]
		if u.gone {
			continue
		}
		if kind == Reorg {
			for j, t := range u.teams {
				if t >= 0 && n.teams[t].gone {
					u.teams[j] = int32(teamPick.pick(rng))
				}
			}
		}
		if rng.Float64() >= share {
			continue
		}
		switch kind {
		case Workday:
			switch rng.IntN(6) {
			case 0:
				u.senior = !u.senior
			case 1:
				u.site = int16((int(u.site) + 1) % len(cities))
			case 2:
				u.dept = int32(deptPick.pick(rng))
			case 3:
				u.teams = [2]int32{int32(teamPick.pick(rng)), -1}
			case 4:
				u.gone = true
			case 5:
				n.users = append(n.users, n.newUser(rng, deptPick, teamPick))
			}
		case Reorg:
			u.dept = int32(deptPick.pick(rng))
			u.teams = [2]int32{-1, -1}
			if rng.IntN(2) == 0 {
				u.teams[0] = int32(teamPick.pick(rng))
			}
		case Deactivate:
			u.inactive = true
		}
	}
	return n
}

// Row is one user as the files hold it: the value of each users.csv
// column (Columns) and the names of the user's groups.
type Row struct {
	Values []string
	Groups []string
}

// Columns are users.csv's columns, in order.
var Columns = []string{"user_id", "email", "first_name", "last_name", "status", "username", "display_name",
	"job_title", "employee_type", "employment_start_date", "department_name", "division_name", "cost_center_name",
	"manager_id", "manager_name", "manager_email", "work_address_street", "work_address_locality",
	"work_address_region", "work_address_postal_code", "work_address_country", "langue préférée", "Mitarbeiter-Nr."}

// Custom is the number of Columns at the end that are custom attributes.
const Custom = 2

func (r *Roster) email(u *user) string {
	return fold(firstNames[u.first]) + "." + fold(lastName(u.last)) + "." + strconv.Itoa(int(u.seq)) + "@acme.example"
}

// fold makes a name usable in an email address: ASCII letters only.
func fold(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteRune(c)
		case c > 127:
			b.WriteByte('a' + byte(c%26))
		}
	}
	return b.String()
}

func (r *Roster) values(u *user, out []string) []string {
	fn, ln := firstNames[u.first], lastName(u.last)
	title := jobTitles[u.title]
	if u.senior {
		title = "Senior " + title
	}
	status := "active"
	if u.inactive {
		status = "terminated"
	}
	d := r.depts[u.dept]
	mid, mname, memail := "", "", ""
	if u.manager >= 0 {
		m := &r.users[u.manager]
		mid, mname, memail = m.id, firstNames[m.first]+" "+lastName(m.last), r.email(m)
	}
	y, mo, dd := 2000+int(u.start)/365, 1+int(u.start)%365/31, 1+int(u.start)%28
	return append(out[:0], u.id, r.email(u), fn, ln, status,
		fold(fn)+strconv.Itoa(int(u.seq)), ln+", "+fn, title, types[int(u.seq)%len(types)],
		fmt.Sprintf("%04d-%02d-%02d", y, min(mo, 12), dd), d.name, divisions[d.division], "CC-"+strconv.Itoa(int(u.dept)%97),
		mid, mname, memail, strconv.Itoa(1+int(u.seq)%200)+", "+streets[int(u.site)%len(streets)],
		cities[u.site], regions[int(u.site)%len(regions)], fmt.Sprintf("%05d", 10000+int(u.seq)%89999),
		countries[u.country].code, langs[u.lang], "B-"+strconv.Itoa(int(u.seq)))
}

func (r *Roster) groupsOf(u *user, out []string) []string {
	out = append(out[:0], AllEmployees, r.depts[u.dept].name)
	if int(u.country) < countryGroups {
		out = append(out, countries[u.country].group)
	}
	for _, t := range u.teams {
		if t >= 0 {
			out = append(out, r.teams[t].name)
		}
	}
	return out
}

// Each calls fn for every user of the export, in users.csv's order. The
// Row is reused: it is valid only during the call.
func (r *Roster) Each(fn func(Row)) {
	var row Row
	for _, i := range r.order() {
		u := &r.users[i]
		row.Values = r.values(u, row.Values)
		row.Groups = r.groupsOf(u, row.Groups)
		fn(row)
	}
}

// Len returns the number of users in the export.
func (r *Roster) Len() int {
	n := 0
	for i := range r.users {
		if !r.users[i].gone {
			n++
		}
	}
	return n
}

// order returns the indexes of the users in users.csv's order.
func (r *Roster) order() []int32 {
	idx := make([]int32, 0, len(r.users))
	for i := range r.users {
		if !r.users[i].gone {
			idx = append(idx, int32(i))
		}
	}
	switch r.shape.Rows {
	case Unsorted:
		rand.New(rand.NewPCG(r.shape.Seed, uint64(r.day)+77)).Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	default:
		slices.SortStableFunc(idx, func(a, b int32) int {
			x, y := &r.users[a], &r.users[b]
			if r.shape.Rows == ByDepartment && x.dept != y.dept {
				return strings.Compare(r.depts[x.dept].name, r.depts[y.dept].name)
			}
			if c := strings.Compare(lastName(x.last), lastName(y.last)); c != 0 {
				return c
			}
			return strings.Compare(firstNames[x.first], firstNames[y.first])
		})
	}
	return idx
}

// GroupDef is one groups.csv row.
type GroupDef struct {
	Name, ID, Description, CostCenter string
}

// Groups returns the groups of groups.csv, in its order: every group the
// export's memberships name, and the departments and countries that have
// no members.
func (r *Roster) Groups() []GroupDef {
	out := []GroupDef{{Name: AllEmployees, ID: "grp-all", Description: "Everyone, worldwide"}}
	for _, c := range countries[:countryGroups] {
		out = append(out, GroupDef{Name: c.group, ID: "grp-" + strings.ToLower(c.code), Description: "Country group, " + c.code})
	}
	for i, d := range r.depts {
		out = append(out, GroupDef{Name: d.name, ID: d.id, Description: "Department of " + divisions[d.division], CostCenter: "CC-" + strconv.Itoa(i%97)})
	}
	used := make([]bool, len(r.teams))
	for i := range r.users {
		if u := &r.users[i]; !u.gone {
			for _, t := range u.teams {
				if t >= 0 {
					used[t] = true
				}
			}
		}
	}
	for i, t := range r.teams {
		if used[i] {
			out = append(out, GroupDef{Name: t.name, Description: "Team or project, " + strconv.Itoa(i)})
		}
	}
	return out
}

// GroupColumns are groups.csv's columns.
var GroupColumns = []string{"group_name", "group_id", "description", "Kostenstelle"}

// appendField appends a CSV field, quoted when it needs to be.
func appendField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") && strings.TrimSpace(s) == s {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

func appendRecord(b []byte, fields []string) []byte {
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendField(b, f)
	}
	return append(b, '\n')
}

// WriteUsers writes users.csv.
func (r *Roster) WriteUsers(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	b := appendRecord(nil, Columns)
	r.Each(func(row Row) {
		b = appendRecord(b, row.Values)
		if len(b) > 64<<10 {
			bw.Write(b)
			b = b[:0]
		}
	})
	bw.Write(b)
	return bw.Flush()
}

// WriteMembers writes user_groups.csv.
func (r *Roster) WriteMembers(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	b := []byte("group_name,user_id\n")
	put := func(g, id string) {
		b = appendRecord(b, []string{g, id})
		if len(b) > 64<<10 {
			bw.Write(b)
			b = b[:0]
		}
	}
	switch r.shape.Members {
	case ByUser:
		r.Each(func(row Row) {
			for _, g := range row.Groups {
				put(g, row.Values[0])
			}
		})
	default:
		type pair struct {
			g  int32
			id string
		}
		groups := r.Groups()
		gi := make(map[string]int32, len(groups))
		for i, g := range groups {
			gi[g.Name] = int32(i)
		}
		var pairs []pair
		r.Each(func(row Row) {
			for _, g := range row.Groups {
				pairs = append(pairs, pair{gi[g], row.Values[0]})
			}
		})
		if r.shape.Members == ByGroup {
			slices.SortStableFunc(pairs, func(a, b pair) int { return int(a.g) - int(b.g) })
		} else {
			rand.New(rand.NewPCG(r.shape.Seed, uint64(r.day)+99)).Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		}
		for _, p := range pairs {
			put(groups[p.g].Name, p.id)
		}
	}
	bw.Write(b)
	return bw.Flush()
}

// WriteGroups writes groups.csv.
func (r *Roster) WriteGroups(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	b := appendRecord(nil, GroupColumns)
	for _, g := range r.Groups() {
		b = appendRecord(b, []string{g.Name, g.ID, g.Description, g.CostCenter})
	}
	bw.Write(b)
	return bw.Flush()
}

// Files returns the three files' contents (for tests, at small sizes).
func (r *Roster) Files() (users, members, groups string) {
	var u, m, g strings.Builder
	r.WriteUsers(&u)
	r.WriteMembers(&m)
	r.WriteGroups(&g)
	return u.String(), m.String(), g.String()
}

// WriteDir writes users.csv, user_groups.csv and groups.csv into dir.
func (r *Roster) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{"users.csv", r.WriteUsers}, {"user_groups.csv", r.WriteMembers}, {"groups.csv", r.WriteGroups}} {
		fh, err := os.Create(filepath.Join(dir, f.name))
		if err != nil {
			return err
		}
		if err := f.write(fh); err != nil {
			fh.Close()
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	return nil
}
