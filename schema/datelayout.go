package schema

import "strings"

// dateLayout is an organization's date format for employment_start_date
// (Mapping): the order of year, month and day and the separator between
// them, or Excel's serial day numbers.
type dateLayout struct {
	name  string  // normalized, as reports show it: "MM/DD/YYYY", "excel"
	order [3]byte // 'Y', 'M', 'D' in the order written
	sep   byte    // 0: none (fixed widths: YYYYMMDD)
	excel bool
}

// parseDateLayout reads a date format: "excel" (or "excel serial"), or
// YYYY, MM and DD once each, in any order, with the same one of / . - or a
// space between them, or nothing.
func parseDateLayout(f string) (*dateLayout, bool) {
	u := strings.ToUpper(strings.TrimSpace(f))
	if u == "EXCEL" || u == "EXCEL SERIAL" {
		return &dateLayout{name: "excel", excel: true}, true
	}
	l := &dateLayout{name: u}
	n, rest := 0, u
	for rest != "" {
		if n == 3 {
			return nil, false
		}
		var tok byte
		switch {
		case strings.HasPrefix(rest, "YYYY"):
			tok, rest = 'Y', rest[4:]
		case strings.HasPrefix(rest, "MM"):
			tok, rest = 'M', rest[2:]
		case strings.HasPrefix(rest, "DD"):
			tok, rest = 'D', rest[2:]
		default:
			return nil, false
		}
		for _, prev := range l.order[:n] {
			if prev == tok {
				return nil, false
			}
		}
		l.order[n] = tok
		n++
		if n < 3 && rest != "" && strings.IndexByte("/.- ", rest[0]) >= 0 {
			if n == 1 {
				l.sep = rest[0]
			} else if l.sep != rest[0] {
				return nil, false
			}
			rest = rest[1:]
		} else if n < 3 && l.sep != 0 {
			return nil, false
		}
	}
	return l, n == 3
}

// appendISO appends v, a date in the layout, as YYYY-MM-DD to dst. It
// reports false (dst unchanged) when v is not a real day in the layout.
// Written with a separator, month and day may have one digit (3/4/2024).
// v may share dst's array: it is read before dst is appended to.
func (l *dateLayout) appendISO(dst, v []byte) ([]byte, bool) {
	var y, m, d int
	if l.excel {
		var ok bool
		if y, m, d, ok = excelDay(v); !ok {
			return dst, false
		}
	} else {
		var parts [3]int
		rest := v
		for i, tok := range l.order {
			width := 2
			if tok == 'Y' {
				width = 4
			}
			j, num := 0, 0
			for j < len(rest) && j < width && rest[j] >= '0' && rest[j] <= '9' {
				num = num*10 + int(rest[j]-'0')
				j++
			}
			if j == 0 || j < width && (tok == 'Y' || l.sep == 0) {
				return dst, false
			}
			parts[i] = num
			rest = rest[j:]
			if i < 2 && l.sep != 0 {
				if len(rest) == 0 || rest[0] != l.sep {
					return dst, false
				}
				rest = rest[1:]
			}
		}
		if len(rest) != 0 {
			return dst, false
		}
		for i, tok := range l.order {
			switch tok {
			case 'Y':
				y = parts[i]
			case 'M':
				m = parts[i]
			case 'D':
				d = parts[i]
			}
		}
	}
	if !validYMD(y, m, d) || y > 9999 {
		return dst, false
	}
	return append(dst, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10)), true
}

// excelDay reads an Excel serial day number (1 = 1900-01-01, with Excel's
// 1900-02-29 that never was, number 60, refused), optionally with a
// fraction for the time of day, which is ignored.
func excelDay(v []byte) (y, m, d int, ok bool) {
	n, i := 0, 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		if i == 7 {
			return 0, 0, 0, false
		}
		n = n*10 + int(v[i]-'0')
		i++
	}
	if i == 0 {
		return 0, 0, 0, false
	}
	if i < len(v) {
		if v[i] != '.' {
			return 0, 0, 0, false
		}
		for _, c := range v[i+1:] {
			if c < '0' || c > '9' {
				return 0, 0, 0, false
			}
		}
	}
	switch {
	case n < 1 || n == 60 || n > 2958465: // 2958465 is 9999-12-31
		return 0, 0, 0, false
	case n < 60:
		n++ // before Excel's 1900-02-29
	}
	y, m, d = civil(n - 25569) // 25569 is 1970-01-01
	return y, m, d, true
}

// civil returns the date of days since 1970-01-01 (proleptic Gregorian;
// H. Hinnant's algorithm).
func civil(days int) (y, m, d int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// layout returns the mapping's date format, or nil.
func (m *Mapping) layout() *dateLayout {
	if m == nil {
		return nil
	}
	return m.date
}

// convertDate rewrites field dateCol of the record just read in keep mode
// as YYYY-MM-DD when it is a date in the organization's format: the ISO
// form is appended to the chunk's buffer and the field points at it, so
// the checker and the callbacks see the date as if the file had it so.
// Anything else is left as written, for the checker to report. It runs on
// the reading goroutine and does not allocate (the chunk's buffer is
// reused).
func (r *reader) convertDate() {
	i := r.fbase + r.dateCol
	if i >= len(r.rec.fields) {
		return
	}
	f := &r.rec.fields[i]
	v := r.rec.buf[r.base+f.start : r.base+f.end]
	if len(v) == 0 || isISODate(v) {
		return
	}
	n := len(r.rec.buf)
	out, ok := r.date.appendISO(r.rec.buf, v)
	if !ok {
		return
	}
	r.rec.buf = out
	f.start, f.end = n-r.base, len(out)-r.base
}
