package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// e2eGPG runs GnuPG in a temporary home, as a customer's delivery step.
func e2eGPG(t *testing.T) func(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := sftptest.LookPath(t, "gpg")
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	return func(t *testing.T, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--homedir", home, "--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", "--trust-model", "always"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, stderr.Bytes())
		}
		return out
	}
}

// orgEvents returns org's events as (event, data) with the organization's
// name and the group ids derived from it (DerivedGroupID) taken out of the
// data, sorted, so that two organizations' events compare.
func orgEvents(t *testing.T, d *testDaemon, org string) []string {
	t.Helper()
	var page struct {
		Data []struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		} `json:"data"`
	}
	if code := d.API("GET", "/v1/events?limit=1000&organization_id="+org, nil, &page); code != 200 {
		t.Fatalf("GET events: %d", code)
	}
	var out []string
	for _, ev := range page.Data {
		data := strings.ReplaceAll(string(ev.Data), `"`+org+`"`, `"ORG"`)
		out = append(out, ev.Event+" "+groupID.ReplaceAllString(data, "grp_ID"))
	}
	sort.Strings(out)
	return out
}

var groupID = regexp.MustCompile(`grp_[0-9a-f]{32}`)

// waitApplied waits for org's first batch to finish and returns it.
func waitApplied(t *testing.T, d *testDaemon, org string) e2eBatch {
	t.Helper()
	var b e2eBatch
	waitFor(t, 30*time.Second, org+"'s batch", func() bool {
		bs := d.batches(org)
		if len(bs) == 0 || bs[0].Status == "pending" || bs[0].Status == "processing" {
			return false
		}
		b = d.batch(org, bs[0].ID)
		return true
	})
	if b.Status != "applied" {
		t.Fatalf("%s: batch %s is %s; report:\n%s", org, b.ID, b.Status, b.Report)
	}
	return b
}

// TestE2EEncryptedAndMappedExports uploads over OpenSSH sftp to the real
// daemon: a WorkOS-format users.csv and user_groups.csv to one
// organization; the same people as a Workday-style delivery (PGP-encrypted
// and signed with GnuPG to the key `POST .../pgp` made, the organization
// requiring signatures) to a second; and as a BambooHR-style export with
// its own column names, gzipped, read through a mapping set with PATCH, to
// a third. All three get the same events.
func TestE2EEncryptedAndMappedExports(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	sftptest.LookPath(t, "gzip")
	gpg := e2eGPG(t)
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "1s"}})
	local := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(local, name)
		os.WriteFile(p, []byte(data), 0o600)
		return p
	}
	users := "user_id,email,first_name,last_name,department_name,status,employment_start_date\n" +
		"E1,ana@acme.test,Ana,Álvarez,Engineering,active,2021-03-01\n" +
		"E2,bo@acme.test,Bo,Chén,Design,inactive,2019-12-31\n"
	groups := "group_name,user_id\nEngineering,E1\nDesign,E2\n"

	plainCfg := sftpOrg(t, d, "plain")
	write("users.csv", users)
	write("user_groups.csv", groups)
	if out, err := sftptest.SFTP(t, plainCfg, fmt.Sprintf("put %s/users.csv\nput %s/user_groups.csv\n", local, local)); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	waitApplied(t, d, "plain")
	want := orgEvents(t, d, "plain")
	if len(want) == 0 {
		t.Fatal("no events for the plain upload")
	}

	t.Run("workday encrypted", func(t *testing.T) {
		cfg := sftpOrg(t, d, "workday")
		out, code := d.CLI("", "org", "pgp", "workday")
		if code != 0 || !strings.Contains(out, "OpenPGP key for encrypted uploads (made now)") || !strings.Contains(out, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
			t.Fatalf("org pgp: %d\n%s", code, out)
		}
		pubKey, code := d.CLI("", "org", "pgp", "workday", "--key-only")
		if code != 0 || !strings.HasPrefix(pubKey, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
			t.Fatalf("org pgp --key-only: %d\n%s", code, pubKey)
		}
		gpg(t, "--import", write("workday.asc", pubKey))
		gpg(t, "--quick-gen-key", "Workday Integration <workday@acme.test>", "rsa3072", "sign", "never")
		signer := write("signer.asc", string(gpg(t, "--armor", "--export", "workday@acme.test")))
		if out, code := d.CLI("", "org", "pgp", "workday", "--add-signer", signer); code != 0 || !strings.Contains(out, "Workday Integration <workday@acme.test>") {
			t.Fatalf("org pgp --add-signer: %d\n%s", code, out)
		}
		if code := d.API("PATCH", "/v1/organizations/workday", map[string]any{"settings": map[string]any{"require_signature": true, "users_patterns": []string{"WorkdayDemog*.csv"}}}, nil); code != 200 {
			t.Fatalf("PATCH: %d", code)
		}
		var info struct {
			Keys []struct {
				Fingerprint string `json:"fingerprint"`
			} `json:"keys"`
		}
		if code := d.API("GET", "/v1/organizations/workday/pgp", nil, &info); code != 200 || len(info.Keys) != 1 {
			t.Fatalf("GET pgp: %d %+v", code, info)
		}
		fp := info.Keys[0].Fingerprint
		// Workday's delivery: binary, compressed, signed, AES-256.
		gpg(t, "--output", filepath.Join(local, "WorkdayDemog0109112019124039.csv.pgp"), "--recipient", fp, "--local-user", "workday@acme.test",
			"--cipher-algo", "AES256", "--compress-algo", "zip", "--sign", "--encrypt", filepath.Join(local, "users.csv"))
		// A MoveIT-style armoured file.
		gpg(t, "--output", filepath.Join(local, "user_groups.csv.asc"), "--armor", "--recipient", fp, "--local-user", "workday@acme.test",
			"--sign", "--encrypt", filepath.Join(local, "user_groups.csv"))
		batch := fmt.Sprintf("put %s/WorkdayDemog0109112019124039.csv.pgp\nput %s/user_groups.csv.asc\n", local, local)
		if out, err := sftptest.SFTP(t, cfg, batch); err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
		b := waitApplied(t, d, "workday")
		if diff := cmp.Diff(want, orgEvents(t, d, "workday")); diff != "" {
			t.Errorf("events differ from the plain upload's (-plain +workday):\n%s", diff)
		}
		for _, w := range []string{`"inner": "WorkdayDemog0109112019124039.csv"`, `"decoded": "decrypted with key workday uploads (rosterd) (` + fp + `), signed by Workday Integration `} {
			if !bytes.Contains(b.Report, []byte(w)) {
				t.Errorf("the report does not hold %s:\n%s", w, b.Report)
			}
		}
		// The report reached the organization's folder too.
		out, err := sftptest.SFTP(t, cfg, "get /reports/latest.txt "+local+"/latest.txt\n")
		if err != nil {
			t.Fatalf("sftp get: %v\n%s", err, out)
		}
		txt, _ := os.ReadFile(filepath.Join(local, "latest.txt"))
		if !strings.Contains(string(txt), "WorkdayDemog0109112019124039.csv.pgp → WorkdayDemog0109112019124039.csv (users)") {
			t.Errorf("latest.txt does not name the file inside:\n%s", txt)
		}
	})

	t.Run("bamboohr mapped and gzipped", func(t *testing.T) {
		cfg := sftpOrg(t, d, "bamboo")
		settings := map[string]any{
			"columns": map[string]string{
				"Employee #": "user_id", "Work Email": "email", "First Name": "first_name", "Last Name": "last_name",
				"Department": "department_name", "Employment Status": "status", "Hire Date": "employment_start_date", "SSN": "drop",
			},
			"status_values": map[string]string{"Terminated": "inactive"},
			"date_format":   "MM/DD/YYYY",
		}
		// The columns one entry at a time with the client, the rest with
		// the API.
		cols := settings["columns"].(map[string]string)
		args := []string{"org", "set", "bamboo"}
		for src, to := range cols {
			args = append(args, "columns."+src+"="+to)
		}
		if out, code := d.CLI("", append(args, "columns.Nope=user_id", "columns.Nope=")...); code != 0 {
			t.Fatalf("org set columns: %d\n%s", code, out)
		}
		delete(settings, "columns")
		if code := d.API("PATCH", "/v1/organizations/bamboo", map[string]any{"settings": settings}, nil); code != 200 {
			t.Fatalf("PATCH mapping: %d", code)
		}
		if out, code := d.CLI("", "org", "set", "bamboo", "columns.Mail=email"); code == 0 || !strings.Contains(out, `"Mail" and "Work Email" are both mapped onto email`) {
			t.Errorf("org set a second source onto email: %d\n%s", code, out)
		}
		if out, code := d.CLI("", "org", "show", "bamboo"); code != 0 || !strings.Contains(out, `"Employee #":"user_id"`) || !strings.Contains(out, "MM/DD/YYYY") {
			t.Errorf("org show: %d\n%s", code, out)
		}
		write("bamboo.csv", "Employee #,First Name,Last Name,Work Email,Department,Employment Status,Hire Date,SSN\n"+
			"E1,Ana,Álvarez,ana@acme.test,Engineering,Active,03/01/2021,123-45-6789\n"+
			"E2,Bo,Chén,bo@acme.test,Design,Terminated,12/31/2019,987-65-4321\n")
		gz, err := exec.Command("gzip", "-c", filepath.Join(local, "bamboo.csv")).Output()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(local, "users.csv.gz"), gz, 0o600)
		if out, err := sftptest.SFTP(t, cfg, fmt.Sprintf("put %s/users.csv.gz\nput %s/user_groups.csv\n", local, local)); err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
		b := waitApplied(t, d, "bamboo")
		if diff := cmp.Diff(want, orgEvents(t, d, "bamboo")); diff != "" {
			t.Errorf("events differ from the plain upload's (-plain +bamboo):\n%s", diff)
		}
		for _, w := range []string{`"column": "Employee #"`, `"read_as": "user_id"`, `"read_as": "drop"`, `"decoded": "gzip-compressed"`} {
			if !bytes.Contains(b.Report, []byte(w)) {
				t.Errorf("the report does not hold %s:\n%s", w, b.Report)
			}
		}
		if bytes.Contains(b.Report, []byte("123-45-6789")) {
			t.Error("the report shows a dropped column's value")
		}
		// The customer checks the next export with the organization's
		// mapping, offline, and plans one with a mapping not set yet.
		if out, code := d.CLI("", "validate", "--org", "bamboo", "--kind", "users", filepath.Join(local, "bamboo.csv")); code != 0 || !strings.Contains(out, `"Employee #"`) {
			t.Errorf("validate --org bamboo: %d\n%s", code, out)
		}
		ex := "../../examples/exports/bamboohr/"
		if out, code := d.CLI("", "plan", "--org", "plain", "--mapping", ex+"mapping.toml", ex+"users.csv"); code != 0 || !strings.Contains(out, "read as user_id") || !strings.Contains(out, "6 created") {
			t.Errorf("plan --mapping: %d\n%s", code, out)
		}
	})
}
