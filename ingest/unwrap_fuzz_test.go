package ingest

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// fuzzNames are the wrappings FuzzDecode tries, chosen by the input's
// first byte; a zip is read as the member users.csv.
var fuzzNames = []struct{ name, member string }{
	{"users.csv.gz", ""},
	{"export.zip", "users.csv"},
	{"users.csv.gpg", ""},
	{"users.csv.asc", ""},
	{"users.csv.gz.gpg", ""},
}

var fuzzKey struct {
	once sync.Once
	ent  *openpgp.Entity
	path string
}

// fuzzKeys makes one ECC key pair for the whole run, written where
// pgpSettings reads it.
func fuzzKeys(t testing.TB) (*openpgp.Entity, string) {
	fuzzKey.once.Do(func() {
		e, err := openpgp.NewEntity("fuzz", "", "", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
		if err != nil {
			panic(err)
		}
		dir, err := os.MkdirTemp("", "fuzzkey")
		if err != nil {
			panic(err)
		}
		var buf bytes.Buffer
		w, _ := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
		e.SerializePrivateWithoutSigning(w, nil)
		w.Close()
		fuzzKey.ent, fuzzKey.path = e, filepath.Join(dir, "private.asc")
		os.WriteFile(fuzzKey.path, buf.Bytes(), 0o600)
	})
	return fuzzKey.ent, fuzzKey.path
}

// FuzzDecode feeds any bytes to the decoding front under each wrapping:
// the text is read to its end or stopped by an InputError, never a panic
// or another error (the bytes are a file on disk that reads fine), and
// the text read from a small file stays within the ratio limit's floor:
// memory is bounded whatever the bytes claim.
func FuzzDecode(f *testing.F) {
	ent, keyFile := fuzzKeys(f)
	csv := []byte(exportUsers)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(csv)
	zw.Close()
	var zb bytes.Buffer
	zz := zip.NewWriter(&zb)
	w, _ := zz.Create("users.csv")
	w.Write(csv)
	zz.Close()
	var pg bytes.Buffer
	pw, _ := openpgp.Encrypt(&pg, []*openpgp.Entity{ent}, ent, nil, &packet.Config{DefaultCompressionAlgo: packet.CompressionZLIB})
	pw.Write(csv)
	pw.Close()
	var asc bytes.Buffer
	aw, _ := armor.Encode(&asc, "PGP MESSAGE", nil)
	aw.Write(pg.Bytes())
	aw.Close()
	var pgz bytes.Buffer
	pw, _ = openpgp.Encrypt(&pgz, []*openpgp.Entity{ent}, nil, nil, nil)
	pw.Write(gz.Bytes())
	pw.Close()
	for i, seed := range [][]byte{gz.Bytes(), zb.Bytes(), pg.Bytes(), asc.Bytes(), pgz.Bytes()} {
		f.Add(append([]byte{byte(i)}, seed...))
		f.Add(append([]byte{byte(i)}, seed[:len(seed)/2]...))
	}
	f.Add([]byte{2})
	f.Add(append([]byte{0}, csv...))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		which := fuzzNames[int(in[0])%len(fuzzNames)]
		data := in[1:]
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		bf := &state.BatchFile{Name: which.name, Inner: which.member}
		o := decodeOpts{pgp: pgpSettings{org: "acme", keyFile: keyFile, signersFile: filepath.Join(dir, "none")}}
		d, err := decode(context.Background(), fh, int64(len(data)), bf, o)
		if err != nil {
			t.Fatalf("decode %s: %v", which.name, err)
		}
		n, err := io.Copy(io.Discard, io.LimitReader(d, 64<<20))
		var ie *schema.InputError
		if err != nil && !errors.As(err, &ie) {
			t.Fatalf("read %s: %v (%T)", which.name, err, err)
		}
		if ie != nil && (ie.Code == "" || ie.Message == "") {
			t.Fatalf("InputError without code or message: %+v", ie)
		}
		if limit := int64(ratioFloor + 1<<20); len(data) < 4096 && n > limit {
			t.Fatalf("%d bytes of %s gave %d bytes of text; the ratio limit allows %d", len(data), which.name, n, limit)
		}
	})
}
