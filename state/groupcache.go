package state

// groupCache is what a writable SnapshotTx knows of the groups it met:
// once read or changed, each one's member count. An
// apply keeps it across its staging transactions (every change of the
// snapshot goes through it), so that a membership costs one map lookup
// for its group, none when the group is the last one met, instead of a
// lookup of its counter and its event copy in each.
type groupCache struct {
	m     map[string]*groupState
	last  *groupState
	dirty []*groupState // member count changed since the last flush
}

type groupState struct {
	id      string
	count   uint64 // member count, once counted
	counted bool
	dirty   bool // count not stored yet
	kept    bool // copied into the batch's event data (ApplyTx.keepGroup)
	guBytes int  // a new generation's members, as buildGU will hold them
}

// groupState returns the cached state of group gid, created empty.
func (s *SnapshotTx) groupState(gid []byte) *groupState {
	c := s.groups
	if c == nil {
		c = &groupCache{m: map[string]*groupState{}}
		s.groups = c
	}
	if c.last != nil && c.last.id == string(gid) {
		return c.last
	}
	g, ok := c.m[string(gid)]
	if !ok {
		g = &groupState{id: string(gid)}
		c.m[g.id] = g
	}
	c.last = g
	return g
}
