package state

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// put appends one event record to the open block (events.go), and
// stores the block once full.
func (a *ApplyTx) put(kind byte, typ string, parts ...[]byte) error {
	v := a.rec[:0]
	if kind == recRaw {
		v = appendLV(append(v, recRaw), typ)
	} else {
		c, ok := typeCode(typ)
		if !ok {
			return fmt.Errorf("unknown event type %q", typ)
		}
		v = append(v, kind, c)
	}
	for i, p := range parts {
		if i < len(parts)-1 {
			v = binary.AppendUvarint(v, uint64(len(p)))
		}
		v = append(v, p...)
	}
	a.rec = v
	if len(a.blk) > 1 && len(a.blk)+binary.MaxVarintLen32+len(v) > eventBlockBytes {
		if err := a.ev.Put(binary.BigEndian.AppendUint32(nil, a.blkFirst), a.blk); err != nil {
			return err
		}
		a.blk = nil // bbolt holds it until the commit
	}
	if len(a.blk) == 0 {
		a.blk = append(make([]byte, 0, eventBlockBytes), recBlock)
		a.blkFirst = a.emitted
	}
	a.blk = append(binary.AppendUvarint(a.blk, uint64(len(v))), v...)
	a.emitted++
	return nil
}

// flush stores the counters and the open event block: ApplyBatch and
// ApplyBatchStaged call it before each commit. The block stays open; a
// commit (after which bbolt no longer holds it) and appending more
// records to it, then storing it again, replaces it.
func (a *ApplyTx) flush() error {
	if err := a.SnapshotTx.flush(); err != nil {
		return err
	}
	if len(a.blk) > 1 {
		return a.ev.Put(binary.BigEndian.AppendUint32(nil, a.blkFirst), a.blk)
	}
	return nil
}

func (a *ApplyTx) lastID() string {
	if a.staged {
		return ""
	}
	return eventID(a.ms, a.seq, a.emitted-1)
}

// Emit stores one event of the given type with data (the SPEC §6 data
// object, valid JSON, stored as given) and returns its id ("" in a staged
// apply, whose ids are drawn when it commits). Events of a batch are
// emitted in SPEC §6 order by the caller; their ids sort in emission
// order.
func (a *ApplyTx) Emit(typ string, data []byte) (string, error) {
	if err := a.put(recRaw, typ, data); err != nil {
		return "", err
	}
	return a.lastID(), nil
}

// keepUser stores the user's current record in the batch's copy, once.
func (a *ApplyTx) keepUser(uid []byte) error {
	if a.lastUser != nil && bytes.Equal(a.lastUser, uid) {
		return nil
	}
	a.lastUser = append(a.lastUser[:0], uid...)
	if a.duOld || (a.duTail != nil && bytes.Compare(uid, a.duTail) <= 0) {
		if _, ok := a.duSeek.find(uid); ok {
			return nil
		}
	}
	v := a.userValue(uid)
	if v == nil {
		a.lastUser = a.lastUser[:0]
		return fmt.Errorf("event of missing user %q", uid)
	}
	if a.duTail == nil || bytes.Compare(uid, a.duTail) > 0 {
		a.duTail = append(a.duTail[:0], uid...)
	}
	a.duSeek.k = nil // a put moves what the cursor points at
	if len(v) != len(a.lastPutVal) || &v[0] != &a.lastPutVal[0] {
		v = bytes.Clone(v) // from the database: valid only until the commit
	}
	return a.du.Put(uid, v)
}

func (a *ApplyTx) keepGroup(gid []byte) error {
	g := a.groupState(gid)
	if g.kept {
		return nil
	}
	if a.dg.Get(gid) == nil {
		_, _, rec, ok := a.Group(gid)
		if !ok {
			return fmt.Errorf("event of missing group %q", gid)
		}
		if err := a.dg.Put(gid, bytes.Clone(rec)); err != nil {
			return err
		}
	}
	g.kept = true
	return nil
}

// EmitUser stores a user event whose data is the user as the snapshot
// holds it now (for dsync.user.deleted: before DeleteUser), plus, when
// prev is not nil, previous_attributes (dsync.user.updated). Every event
// of a batch that names a user shows the same record: the first one
// emitted.
func (a *ApplyTx) EmitUser(typ string, uid, prev []byte) error {
	if err := a.keepUser(uid); err != nil {
		return err
	}
	if prev != nil {
		return a.put(recUpdate, typ, uid, prev)
	}
	return a.put(recUser, typ, uid)
}

// EmitGroup stores a group event whose data is the group as the snapshot
// holds it now.
func (a *ApplyTx) EmitGroup(typ string, gid []byte) error {
	if err := a.keepGroup(gid); err != nil {
		return err
	}
	return a.put(recGroup, typ, gid)
}

// EmitMember stores a membership event, data {"user": ..., "group": ...}
// as the snapshot holds them now.
func (a *ApplyTx) EmitMember(typ string, uid, gid []byte) error {
	if err := a.keepUser(uid); err != nil {
		return err
	}
	if err := a.keepGroup(gid); err != nil {
		return err
	}
	return a.put(recMember, typ, uid, gid)
}

// Emitted returns the number of events emitted so far.
func (a *ApplyTx) Emitted() int { return int(a.emitted) }

// commit makes the events visible (or drops the empty event bucket).
func (a *ApplyTx) commit(tx *bolt.Tx, seq, ms uint64) error {
	if a.emitted == 0 {
		return tx.Bucket(bucketEventData).DeleteBucket(dataKey(a.b.Org, a.b.ID))
	}
	return writeCommit(tx, commitRec{seq: seq, ms: ms, count: a.emitted, created: *a.b.FinishedAt, org: a.b.Org, batch: a.b.ID})
}
