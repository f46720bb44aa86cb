package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/schema/report"
)

// send sends body (JSON when not nil) to path and decodes the answer
// into v; it returns the status.
func send(t *testing.T, srv *httptest.Server, method, path string, body any, v any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, srv.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+dirTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

// TestMappingSettings sets a mapping through PATCH: a valid one is
// stored, a PATCH of a map replaces it whole, and a bad one is refused
// with a message naming each bad entry.
func TestMappingSettings(t *testing.T) {
	srv, _, _ := ingestServer(t)
	var o Organization
	code := send(t, srv, "PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{
		"columns":       map[string]string{"Employee ID": "user_id", "Work Email": "email", "SSN": "drop"},
		"status_values": map[string]string{"Terminated": "inactive"},
		"date_format":   "MM/DD/YYYY",
	}}, &o)
	if code != 200 || len(o.Settings.Columns) != 3 || o.Settings.DateFormat != "MM/DD/YYYY" {
		t.Fatalf("PATCH mapping = %d %+v", code, o.Settings)
	}
	o = Organization{}
	code = send(t, srv, "PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{
		"columns": map[string]string{"Worker": "user_id"},
	}}, &o)
	if code != 200 || len(o.Settings.Columns) != 1 || o.Settings.Columns["Worker"] != "user_id" || o.Settings.StatusValues["Terminated"] != "inactive" {
		t.Fatalf("PATCH columns = %d %+v; want columns replaced, status values kept", code, o.Settings)
	}
	var e apiError
	code = send(t, srv, "PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{
		"columns":     map[string]string{"Employee ID": "user_id", "Worker ID": "user_id", "Mail": "e-mail"},
		"date_format": "soon",
	}}, &e)
	for _, w := range []string{
		`settings.columns: "Employee ID" and "Worker ID" are both mapped onto user_id`,
		`settings.columns: "Mail" is mapped onto "e-mail", which is not a column`,
		`settings.date_format: "soon" is not a date format`,
	} {
		if code != 400 || e.Error.Code != "invalid_settings" || !strings.Contains(e.Error.Message, w) {
			t.Errorf("PATCH bad mapping = %d %+v; want 400 saying %q", code, e, w)
		}
	}
	o = Organization{}
	send(t, srv, "GET", "/v1/organizations/acme", nil, &o)
	if o.Settings.Columns["Worker"] != "user_id" || len(o.Settings.Columns) != 1 {
		t.Errorf("a refused PATCH changed the settings: %+v", o.Settings)
	}
	code = send(t, srv, "PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{"pgp_key_file": "/nonexistent/key.asc"}}, &e)
	if code != 400 || !strings.Contains(e.Error.Message, "settings.pgp_key_file") {
		t.Errorf("PATCH pgp_key_file of a missing file = %d %+v; want 400", code, e)
	}
}

// TestGroupsFromColumnsSetting sets groups_from_columns through PATCH:
// entries as names or objects are stored as objects and shown in the
// effective settings; a bad one is refused with a message naming the
// column, and changes nothing.
func TestGroupsFromColumnsSetting(t *testing.T) {
	srv, _, _ := ingestServer(t)
	var o Organization
	code := send(t, srv, "PATCH", "/v1/organizations/acme", json.RawMessage(`{"settings": {
		"columns": {"Dept": "department_name"},
		"groups_from_columns": ["work_address_locality", {"column": "department_name", "template": "Department: {value}"}, {"column": "groups", "separator": ";"}]}}`), &o)
	want := `[{"column":"work_address_locality"},{"column":"department_name","template":"Department: {value}"},{"column":"groups","separator":";"}]`
	if got, _ := json.Marshal(o.Settings.GroupsFromColumns); code != 200 || string(got) != want {
		t.Fatalf("PATCH groups_from_columns = %d %s; want 200 %s", code, got, want)
	}
	var detail struct {
		EffectiveSettings map[string]json.RawMessage `json:"effective_settings"`
	}
	send(t, srv, "GET", "/v1/organizations/acme", nil, &detail)
	if got := detail.EffectiveSettings["groups_from_columns"]; !jsonEqual(got, json.RawMessage(want)) {
		t.Errorf("effective_settings.groups_from_columns = %s; want %s", got, want)
	}
	for _, tt := range []struct{ body, want string }{
		{`["Dept"]`, `settings.groups_from_columns: the column "Dept" is read as department_name by the columns mapping: name department_name`},
		{`["groups", "Groups"]`, `settings.groups_from_columns: "groups" and "Groups" are the same column`},
		{`[{"column": "department_name", "template": ""}]`, `settings.groups_from_columns: the template of department_name is empty`},
		{`[{"column": "department_name", "template": "Staff"}]`, `settings.groups_from_columns: the template "Staff" of department_name has no {value}`},
		{`[{"column": "email"}]`, `settings.groups_from_columns: email identifies the person`},
		{`[{"column": "department_name", "prefix": "D"}]`, `unknown field "prefix"`},
	} {
		var e apiError
		code := send(t, srv, "PATCH", "/v1/organizations/acme", json.RawMessage(`{"settings": {"groups_from_columns": `+tt.body+`}}`), &e)
		if code != 400 || e.Error.Code != "invalid_settings" || !strings.Contains(e.Error.Message, tt.want) {
			t.Errorf("PATCH groups_from_columns %s = %d %+v; want 400 saying %q", tt.body, code, e, tt.want)
		}
	}
	o = Organization{}
	send(t, srv, "GET", "/v1/organizations/acme", nil, &o)
	if got, _ := json.Marshal(o.Settings.GroupsFromColumns); string(got) != want {
		t.Errorf("a refused PATCH changed groups_from_columns to %s", got)
	}
}

// TestPGPAPI makes the organization's key through the API, shows it,
// adds and removes a signing key.
func TestPGPAPI(t *testing.T) {
	srv, _, _ := ingestServer(t)
	var info ingest.PGPInfo
	if code := send(t, srv, "GET", "/v1/organizations/acme/pgp", nil, &info); code != 200 || len(info.Keys) != 0 {
		t.Fatalf("GET pgp before a key = %d %+v", code, info)
	}
	if code := send(t, srv, "POST", "/v1/organizations/acme/pgp", map[string]any{"algorithm": "ecc"}, &info); code != 201 || len(info.Keys) != 1 ||
		!strings.HasPrefix(info.Keys[0].PublicKey, "-----BEGIN PGP PUBLIC KEY BLOCK-----") || strings.Contains(info.Keys[0].PublicKey, "PRIVATE") {
		t.Fatalf("POST pgp = %d %+v; want 201 with the public key", code, info)
	}
	fp := info.Keys[0].Fingerprint
	if code := send(t, srv, "POST", "/v1/organizations/acme/pgp", nil, &info); code != 200 || info.Keys[0].Fingerprint != fp {
		t.Errorf("POST pgp again = %d %+v; want 200 and the same key", code, info)
	}
	var e apiError
	if code := send(t, srv, "POST", "/v1/organizations/acme/pgp", map[string]any{"algorithm": "dsa"}, &e); code != 400 {
		t.Errorf("POST pgp dsa rotate = %d %+v; want 400", code, e)
	}
	if code := send(t, srv, "POST", "/v1/organizations/nope/pgp", nil, &e); code != 404 {
		t.Errorf("POST pgp of an unknown organization = %d; want 404", code)
	}
	// The organization's own public key is a valid signing key to add.
	var added struct{ Data []ingest.PGPKey }
	if code := send(t, srv, "POST", "/v1/organizations/acme/pgp/signers", map[string]any{"public_key": info.Keys[0].PublicKey}, &added); code != 201 || len(added.Data) != 1 {
		t.Fatalf("POST signer = %d %+v", code, added)
	}
	if code := send(t, srv, "POST", "/v1/organizations/acme/pgp/signers", map[string]any{"public_key": "ssh-ed25519 AAAA"}, &e); code != 400 || e.Error.Code != "invalid_key" {
		t.Errorf("POST an SSH key as signer = %d %+v; want 400 invalid_key", code, e)
	}
	if code := send(t, srv, "DELETE", "/v1/organizations/acme/pgp/signers/"+fp, nil, nil); code != 204 {
		t.Errorf("DELETE signer = %d; want 204", code)
	}
	if code := send(t, srv, "DELETE", "/v1/organizations/acme/pgp/signers/"+fp, nil, &e); code != 404 {
		t.Errorf("DELETE signer again = %d; want 404", code)
	}
}

// TestPlanWithMapping plans an export with the organization's own column
// names under a mapping given with the request: the report says how each
// column was read, and a bad mapping is refused.
func TestPlanWithMapping(t *testing.T) {
	srv, _, _ := ingestServer(t)
	plan := func(mapping string) (int, []byte) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", "users.csv")
		fw.Write([]byte("Employee ID,Work Email,First,Last,Status\nE1,a@x.test,A,A,On Leave\n"))
		if mapping != "" {
			mw.WriteField("mapping", mapping)
		}
		mw.Close()
		req, _ := http.NewRequest("POST", srv.URL+"/v1/organizations/acme/plan", &body)
		req.Header.Set("Authorization", "Bearer "+dirTestToken)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := plan(`{"columns": {"Employee ID": "user_id", "Work Email": "email", "First": "first_name", "Last": "last_name"}, "status_values": {"On Leave": "active"}}`)
	var rep report.Report
	json.Unmarshal(b, &rep)
	if code != 200 || rep.Status != "applied" || rep.Changes.UsersCreated != 1 || rep.Mapping == nil || len(rep.Mapping.Columns) != 5 || rep.Mapping.Columns[0].ReadAs != "user_id" {
		t.Fatalf("plan with mapping = %d %s", code, b)
	}
	if code, b := plan(""); code != 200 || !bytes.Contains(b, []byte(`"status": "rejected"`)) {
		t.Errorf("plan without mapping = %d %s; want rejected (no user_id column)", code, b)
	}
	if code, b := plan(`{"columns": {"Employee ID": "id"}}`); code != 400 || !bytes.Contains(b, []byte(`mapping.columns: \"Employee ID\" is mapped onto \"id\"`)) {
		t.Errorf("plan with a bad mapping = %d %s; want 400 naming it", code, b)
	}
}

// testPGPKeyFile writes an OpenPGP private key (Curve25519, no
// passphrase) that the pgp_key_file setting accepts, and returns its path.
func testPGPKeyFile(t *testing.T) string {
	t.Helper()
	e, err := openpgp.NewEntity("test", "", "", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(t.TempDir(), "private.asc")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
