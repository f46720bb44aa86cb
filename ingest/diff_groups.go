package ingest

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

func (d *differ) readGroups(rd io.Reader, file string) (schema.FileResult, error) {
	var rows []*fileGroup
	res, err := d.r.checker.Groups(rd, file, func(g *schema.Group) error {
		rows = append(rows, &fileGroup{
			id: g.ID, name: g.Name, desc: g.Description,
			custom: slices.Clone(sortedAttrs(d.attrs, g.Custom)),
		})
		return nil
	})
	if err != nil || d.r.checker.Errors() > 0 {
		return res, err
	}
	given := map[string]bool{}
	for _, g := range rows {
		if g.id != "" {
			given[g.id] = true
		}
	}
	// A group without group_id keeps the id it has (it may have been
	// created from user_groups.csv), else gets the derived one.
	for _, g := range rows {
		if g.id != "" {
			continue
		}
		if id, ok := d.s.GroupByName(g.name); ok && !given[id] {
			g.id = id
		} else {
			g.id = DerivedGroupID(d.org, g.name)
		}
		if given[g.id] {
			d.r.issues = append(d.r.issues, schema.Issue{
				File: file, Column: "group_id", Value: g.id, Code: schema.CodeDuplicateGroupID, Severity: schema.SeverityError,
				Message: fmt.Sprintf("group %q gets the id %q that another group's group_id already has; give it a group_id of its own", g.name, g.id),
			})
		}
		given[g.id] = true
	}
	for _, g := range rows {
		d.fileGroups[g.id] = g
		d.fileNames[g.name] = g.id
	}
	return res, nil
}

// groups decides every group's fate: a group exists when groups.csv holds
// it or it has members (SPEC §4).
func (d *differ) groups() error {
	r := d.r
	type old struct {
		name  string
		flags byte
		rec   []byte
	}
	olds := map[string]old{}
	err := d.s.ForEachGroup(func(id []byte, name string, flags byte, rec []byte) error {
		olds[string(id)] = old{name, flags, bytes.Clone(rec)}
		return nil
	})
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for id := range olds {
		ids[id] = true
	}
	for id := range d.fileGroups {
		ids[id] = true
	}
	for id := range d.memNames {
		ids[id] = true
	}
	for id := range d.memDelta {
		ids[id] = true
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	slices.Sort(sorted)
	for _, id := range sorted {
		o, had := olds[id]
		var members int
		if d.haveMembers {
			members = d.memCount[id]
		} else {
			members = d.s.MemberCount([]byte(id)) + d.memDelta[id]
		}
		g := groupChange{id: id}
		switch fg := d.fileGroups[id]; {
		case fg != nil:
			g.name, g.flags = fg.name, state.GroupInFile
			g.rec = renderGroup(nil, d.org, id, fg.name, fg.desc, fg.custom)
		case !d.haveGroups && had:
			g.name, g.flags, g.rec = o.name, o.flags, o.rec
		default:
			g.name = d.memNames[id]
			if g.name == "" {
				g.name = o.name
			}
			g.rec = renderGroup(nil, d.org, id, g.name, "", nil)
		}
		exists := g.flags&state.GroupInFile != 0 || members > 0
		switch {
		case had && !exists:
			r.groupsDeleted = append(r.groupsDeleted, id)
			r.changes.GroupsDeleted++
		case !had && exists:
			g.event = state.EventGroupCreated
			r.groups = append(r.groups, g)
			r.changes.GroupsCreated++
		case had && exists:
			if !bytes.Equal(o.rec, g.rec) {
				g.event = state.EventGroupUpdated
				r.changes.GroupsUpdated++
			} else if o.flags == g.flags && o.name == g.name {
				continue
			}
			r.groups = append(r.groups, g)
		}
	}
	return nil
}
