package schema

import "strings"

// dateForm checks an employment_start_date. It returns ok for an ISO 8601
// calendar date (YYYY-MM-DD, a real day). Otherwise, when the value is a
// date written another recognisable way, it names that form (for the
// warning); when form is "" too, the value is not a date.
func dateForm(v []byte) (ok bool, form string) {
	if isISODate(v) {
		return true, ""
	}
	s := string(v)
	if len(s) > 10 && isISODate(v[:10]) && (s[10] == 'T' || s[10] == ' ') {
		return false, "a date and time (YYYY-MM-DDThh:mm:ss); only the date is expected"
	}
	var nums []string
	var words []string
	var seps []byte
	for i := 0; i < len(s); {
		c := s[i]
		j := i
		switch {
		case c >= '0' && c <= '9':
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			nums = append(nums, s[i:j])
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			for j < len(s) && (s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z') {
				j++
			}
			words = append(words, strings.ToLower(s[i:j]))
		case c == '-' || c == '/' || c == '.' || c == ' ' || c == ',':
			j++
			if c != ' ' && c != ',' {
				seps = append(seps, c)
			}
		default:
			return false, ""
		}
		i = j
	}
	if len(words) == 0 {
		switch {
		case len(nums) == 1 && len(nums[0]) == 8:
			n := nums[0]
			if validYMD(atoi(n[:4]), atoi(n[4:6]), atoi(n[6:])) {
				return false, "YYYYMMDD without dashes"
			}
		case len(nums) == 1 && len(nums[0]) == 5:
			if n := atoi(nums[0]); n >= 1 && n <= 80000 {
				return false, "an Excel date number (format the column as a date before exporting)"
			}
		case len(nums) == 3 && len(seps) == 2 && seps[0] == seps[1]:
			sep := string(seps[0])
			a, b, c := atoi(nums[0]), atoi(nums[1]), atoi(nums[2])
			if len(nums[0]) == 4 && validYMD(a, b, c) {
				return false, "YYYY" + sep + "M" + sep + "D"
			}
			if len(nums[2]) != 4 && len(nums[2]) != 2 {
				return false, ""
			}
			y := "YYYY"
			if len(nums[2]) == 2 {
				y, c = "YY", c+2000
			}
			dmy, mdy := validYMD(c, b, a), validYMD(c, a, b)
			switch {
			case dmy && mdy:
				return false, "DD" + sep + "MM" + sep + y + " or MM" + sep + "DD" + sep + y + " (which one cannot be told)"
			case dmy:
				return false, "DD" + sep + "MM" + sep + y
			case mdy:
				return false, "MM" + sep + "DD" + sep + y
			}
		}
		return false, ""
	}
	if len(nums) != 2 || len(nums[1]) != 4 {
		return false, ""
	}
	m := 0
	for _, w := range words {
		if mm := monthOf(w); mm != 0 && m == 0 {
			m = mm
		} else if !weekday(w) {
			return false, ""
		}
	}
	if m == 0 || !validYMD(atoi(nums[1]), m, atoi(nums[0])) {
		return false, ""
	}
	if monthFirst(s) {
		return false, "month name, day, year (like March 1, 2024)"
	}
	return false, "day, month name, year (like 1 March 2024)"
}

// monthFirst reports whether the first month-name word comes before the
// first number in s (weekday names are skipped).
func monthFirst(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			return false
		}
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			j := i
			for j < len(s) && (s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z') {
				j++
			}
			if monthOf(strings.ToLower(s[i:j])) != 0 {
				return true
			}
			i = j - 1
		}
	}
	return false
}

func weekday(w string) bool {
	for _, d := range [...]string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"} {
		if len(w) >= 3 && strings.HasPrefix(d, w) {
			return true
		}
	}
	return false
}

func isISODate(v []byte) bool {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' {
		return false
	}
	for i, c := range v {
		if i != 4 && i != 7 && (c < '0' || c > '9') {
			return false
		}
	}
	y := int(v[0]-'0')*1000 + int(v[1]-'0')*100 + int(v[2]-'0')*10 + int(v[3]-'0')
	m := int(v[5]-'0')*10 + int(v[6]-'0')
	d := int(v[8]-'0')*10 + int(v[9]-'0')
	return validYMD(y, m, d)
}

func validYMD(y, m, d int) bool {
	if y < 1 || m < 1 || m > 12 || d < 1 {
		return false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m]
	if m == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		days = 29
	}
	return d <= days
}

func atoi(s string) int {
	if len(s) > 9 {
		return -1
	}
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func monthOf(w string) int {
	months := [...]string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}
	if len(w) < 3 {
		return 0
	}
	for i, m := range months {
		if strings.HasPrefix(m, w) || (w == "sept" && i == 8) {
			return i + 1
		}
	}
	return 0
}
