package state

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// mcursor walks a base bucket with an overlay over it: an overlay entry
// replaces the base entry of the same key, and an opDel entry hides it.
// Either bucket may be nil.
type mcursor struct {
	b, o         *bolt.Cursor
	bk, bv       []byte
	ok, ov       []byte
	fromB, fromO bool
}

func newMcursor(base, over *bolt.Bucket) *mcursor {
	m := &mcursor{}
	if base != nil {
		m.b = base.Cursor()
	}
	if over != nil {
		m.o = over.Cursor()
	}
	return m
}

func (m *mcursor) first() ([]byte, []byte) {
	if m.b != nil {
		m.bk, m.bv = m.b.First()
	}
	if m.o != nil {
		m.ok, m.ov = m.o.First()
	}
	return m.pick()
}

func (m *mcursor) seek(k []byte) ([]byte, []byte) {
	if m.b != nil {
		m.bk, m.bv = m.b.Seek(k)
	}
	if m.o != nil {
		m.ok, m.ov = m.o.Seek(k)
	}
	return m.pick()
}

func (m *mcursor) next() ([]byte, []byte) {
	if m.fromB {
		m.bk, m.bv = m.b.Next()
	}
	if m.fromO {
		m.ok, m.ov = m.o.Next()
	}
	return m.pick()
}

func (m *mcursor) pick() ([]byte, []byte) {
	for {
		m.fromB, m.fromO = false, false
		if m.ok == nil {
			if m.bk == nil {
				return nil, nil
			}
			m.fromB = true
			return m.bk, m.bv
		}
		c := 1
		if m.bk != nil {
			c = bytes.Compare(m.bk, m.ok)
		}
		if c < 0 {
			m.fromB = true
			return m.bk, m.bv
		}
		m.fromO, m.fromB = true, c == 0
		if len(m.ov) > 0 && m.ov[0] == opPut {
			return m.ok, m.ov[1:]
		}
		m.ok, m.ov = m.o.Next() // a deletion: skip the key in both
		if m.fromB {
			m.bk, m.bv = m.b.Next()
		}
	}
}
