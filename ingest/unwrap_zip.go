package ingest

import (
	"archive/zip"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// A .zip upload holds the canonical files (SPEC §4): users.csv,
// user_groups.csv, groups.csv, or names the organization's patterns
// match, in any folder of the archive. Once the batch is archived,
// expandZips replaces the zip by one batch file per member it will read,
// each naming the zip (Name: the archived copy, as uploaded) and the
// member (Inner). Members are decompressed from the archived zip when the
// batch is read, never written out.

// zipMember is one member of an uploaded zip that the batch reads.
type zipMember struct {
	name string // inside the archive
	kind schema.Kind
	f    *zip.File
}

// zipMembers lists the members of the zip in ra that are files of a
// batch, by kind, and says why the others were left out.
func zipMembers(kindOf func(string) (schema.Kind, bool), ra io.ReaderAt, size int64, name string) ([]zipMember, []string, error) {
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, nil, err
	}
	var notes []string
	byKind := map[schema.Kind]zipMember{}
	var others []string
	for _, f := range zr.File {
		base := path.Base(strings.ReplaceAll(f.Name, `\`, "/"))
		if f.FileInfo().IsDir() || strings.HasPrefix(f.Name, "__MACOSX/") || strings.HasPrefix(base, "._") {
			continue
		}
		k, ok := kindOf(base)
		if !ok {
			others = append(others, f.Name)
			continue
		}
		if why := zipUnreadable(f); why != "" {
			notes = append(notes, fmt.Sprintf("%s in %s was not read: %s.", f.Name, name, why))
			continue
		}
		if prev, dup := byKind[k]; dup {
			keep, drop := prev, zipMember{f.Name, k, f}
			if f.Modified.After(prev.f.Modified) {
				keep, drop = drop, keep
			}
			byKind[k] = keep
			notes = append(notes, fmt.Sprintf("%s in %s was ignored: %s is the newer %s file in the archive.", drop.name, name, keep.name, k))
			continue
		}
		byKind[k] = zipMember{f.Name, k, f}
	}
	var out []zipMember
	for _, k := range []schema.Kind{schema.Users, schema.UserGroups, schema.Groups} {
		if m, ok := byKind[k]; ok {
			out = append(out, m)
		}
	}
	if len(out) == 0 && len(notes) == 0 {
		has := "nothing"
		if len(others) > 0 {
			has = strings.Join(others[:min(len(others), 5)], ", ")
			if len(others) > 5 {
				has += fmt.Sprintf(" and %d more", len(others)-5)
			}
		}
		notes = append(notes, fmt.Sprintf("%s holds none of users.csv, user_groups.csv or groups.csv (it holds %s), so it is not part of this batch.", name, has))
	}
	return out, notes, nil
}

// zipUnreadable says why a member cannot be read, or "".
func zipUnreadable(f *zip.File) string {
	switch {
	case f.Flags&0x1 != 0:
		return "it is protected by a password, which rosterd cannot read: make the zip without a password (encrypt the CSV files with the organization's OpenPGP key instead)"
	case f.Method != zip.Store && f.Method != zip.Deflate:
		return fmt.Sprintf("it is compressed with method %d, which rosterd does not read: make the zip with the standard (deflate) compression", f.Method)
	}
	return ""
}

// expandZips replaces each archived .zip of files by the members the
// batch reads (see above), resolving a member and a plain upload of the
// same kind like two uploads: the more recently completed one wins.
func (p *Pipeline) expandZips(org, dir string, files []state.BatchFile, notes []string) ([]state.BatchFile, []string) {
	hasZip := slices.ContainsFunc(files, func(f state.BatchFile) bool { return schema.Kind(f.Kind) == kindZip })
	if !hasZip {
		return files, notes
	}
	set, err := p.settingsFor(org)
	if err != nil {
		return files, notes
	}
	var out []state.BatchFile
	for _, f := range files {
		if schema.Kind(f.Kind) != kindZip {
			out = append(out, f)
		}
	}
	for _, f := range files {
		if schema.Kind(f.Kind) != kindZip {
			continue
		}
		if _, layers := splitName(f.Name); len(layers) > 1 {
			notes = append(notes, fmt.Sprintf("%s is a zip archive inside another wrapping, which rosterd does not read: upload the zip as it is, or encrypt or compress each CSV file by itself (users.csv.gpg, users.csv.gz). It is not part of this batch.", f.Name))
			continue
		}
		members, more, err := readZipMembers(set, archivedFile(dir, f), f.Name)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s is not a zip archive rosterd can read (%v), so it is not part of this batch: make the zip again and upload it.", f.Name, err))
			continue
		}
		notes = append(notes, more...)
		for _, m := range members {
			mf := f
			mf.Kind, mf.Inner = string(m.kind), m.name
			i := slices.IndexFunc(out, func(o state.BatchFile) bool { return o.Kind == mf.Kind })
			if i < 0 {
				out = append(out, mf)
				continue
			}
			keep, drop := out[i], mf
			if completedAfter(mf, out[i]) {
				keep, drop = mf, out[i]
			}
			out[i] = keep
			notes = append(notes, fmt.Sprintf("%s was ignored: %s is the newer %s file of this batch.", fileLabel(drop), fileLabel(keep), m.kind))
		}
	}
	order := map[string]int{string(schema.Users): 0, string(schema.UserGroups): 1, string(schema.Groups): 2}
	slices.SortStableFunc(out, func(a, b state.BatchFile) int { return cmp.Compare(order[a.Kind], order[b.Kind]) })
	return out, notes
}

// completedAfter reports whether a's upload completed after b's (SPEC §5,
// order.go): the later completion time (the change time when the file
// was replaced before it was archived), then the name that sorts last.
// Records without completion times (formed before they were kept) go by
// modification time.
func completedAfter(a, b state.BatchFile) bool {
	ta, tb := a.CompletedAt, b.CompletedAt
	if ta.IsZero() && tb.IsZero() {
		ta, tb = a.ModTime, b.ModTime
	}
	if a.ChangeTime.After(ta) {
		ta = a.ChangeTime
	}
	if b.ChangeTime.After(tb) {
		tb = b.ChangeTime
	}
	if c := ta.Compare(tb); c != 0 {
		return c > 0
	}
	return a.Name > b.Name
}

// fileLabel names a batch file in a note: the upload, and the member of a
// zip.
func fileLabel(f state.BatchFile) string {
	if f.Inner != "" {
		if _, layers := splitName(f.Name); len(layers) == 1 && layers[0] == layerZip {
			return f.Inner + " in " + f.Name
		}
	}
	return f.Name
}

func readZipMembers(set settings, path, name string) ([]zipMember, []string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, nil, err
	}
	return zipMembers(set.plainKindOf, fh, st.Size(), name)
}

// openZipMember opens the member of the zip read through src (its size
// is src.size) as decompressed text, with its declared size.
func openZipMember(src *srcCounter, name, member string) (io.Reader, int64, *schema.InputError) {
	zr, err := zip.NewReader(src, src.size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if serr := src.sourceErr(err); serr != nil {
			return errReader{serr}, -1, nil
		}
		return nil, -1, &schema.InputError{Code: schema.CodeCorruptFile, Message: fmt.Sprintf(
			"%s is not a zip archive rosterd can read (%v): make the zip again and upload it", msgName(name), err)}
	}
	for _, f := range zr.File {
		if f.Name != member {
			continue
		}
		if why := zipUnreadable(f); why != "" {
			return nil, -1, &schema.InputError{Code: schema.CodeUnsupportedFormat, Message: fmt.Sprintf("%s in %s cannot be read: %s", member, msgName(name), why)}
		}
		rc, err := f.Open()
		if err != nil {
			return nil, -1, &schema.InputError{Code: schema.CodeCorruptFile, Message: fmt.Sprintf("%s in %s cannot be read (%v): make the zip again and upload it", member, msgName(name), err)}
		}
		return &layerReader{r: rc, src: src, what: func(err error) *schema.InputError {
			return &schema.InputError{Code: schema.CodeCorruptFile, Message: fmt.Sprintf(
				"%s in %s is damaged (%v): its data does not match the archive's checksum or is cut off. Make the zip again and upload it", member, msgName(name), err)}
		}}, int64(f.UncompressedSize64), nil
	}
	return nil, -1, &schema.InputError{Code: schema.CodeCorruptFile, Message: fmt.Sprintf("%s no longer holds %s", msgName(name), member)}
}
