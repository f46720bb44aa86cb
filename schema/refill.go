package schema

import "io"

// refill completes a duplicate-email issue after the pass. Emails are
// compared ignoring case and only their hash and line are kept (bounded
// memory), so when a repeat is found the earlier line's spelling is not at
// hand. Every issue must still show the value on its own line: after the
// pass, the spellings on the lines the kept issues need are read again
// from the file, when the reader can seek. Otherwise the issue keeps the
// message it was given, which claims no spelling it does not know.
type refill struct {
	line      int    // the line whose email spelling is wanted
	other     string // when line is the issue's own line: the other line's spelling
	otherLine int
}

// source is a users file that can be read again from its start.
type source struct {
	rs    io.ReadSeeker
	start int64
}

// rereadable returns r as a source when r can seek, else nil. Its current
// offset is taken as the start of the file.
func rereadable(r io.Reader) *source {
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		return nil
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil
	}
	return &source{rs: rs, start: start}
}

// refillEmails completes the current file's kept issues that wait for an
// email spelling (at most MaxIssues lines are read back). col is the
// email column, delim the file's delimiter.
func (c *Checker) refillEmails(src *source, delim byte, col int) {
	var need map[int]string
	for i := range c.held {
		if rf := c.held[i].refill; rf != nil && c.held[i].file == c.nfile {
			if need == nil {
				need = map[int]string{}
			}
			need[rf.line] = ""
		}
	}
	if need == nil {
		return
	}
	if src != nil && col >= 0 {
		c.reread(src, delim, col, need)
	}
	for i := range c.held {
		h := &c.held[i]
		rf := h.refill
		if rf == nil || h.file != c.nfile {
			continue
		}
		h.refill = nil
		v := need[rf.line]
		if v == "" {
			continue // not found again: the first message stands
		}
		if rf.line == h.Line {
			h.Value = v
			h.Message = dupEmailMsg(v, rf.otherLine, rf.other)
		} else {
			h.Message = dupEmailMsg(h.Value, rf.line, v)
		}
	}
}

// reread reads the file again from its start and sets need[line] to the
// email (cut as in issues) whose field starts on that line. It stops after
// the last line needed; a reading error leaves the rest unset.
func (c *Checker) reread(src *source, delim byte, col int, need map[int]string) {
	if _, err := src.rs.Seek(src.start, io.SeekStart); err != nil {
		return
	}
	last := 0
	for ln := range need {
		last = max(last, ln)
	}
	br, _ := openText(&sizeReader{r: src.rs, limit: c.lim.MaxFileSize})
	rd := &reader{
		br:       br,
		delim:    delim,
		maxField: c.lim.MaxFieldSize,
		maxLine:  c.lim.MaxColumns * (c.lim.MaxFieldSize + 3),
	}
	if rd.next() != nil { // the header
		return
	}
	for found := 0; found < len(need); {
		if rd.next() != nil {
			return
		}
		rec := &rd.rec
		if rec.problem != probNone || col >= len(rec.fields) {
			continue
		}
		ln := rec.fields[col].line
		if ln > last {
			return
		}
		if v, ok := need[ln]; ok && v == "" {
			need[ln] = cut(rec.value(col))
			found++
		}
	}
}
