package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/rosterd/rosterd/state"
)

// dirSend sends a JSON body with the token and decodes the answer into v
// (when not nil); it returns the status.
func dirSend(t *testing.T, srv *httptest.Server, method, path, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+dirTestToken)
	req.Header.Set("Content-Type", "application/json")
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

// settingsJSON returns the stored settings of org as a JSON object.
func settingsJSON(t *testing.T, srv *httptest.Server, org string) map[string]json.RawMessage {
	t.Helper()
	var o struct {
		Settings map[string]json.RawMessage `json:"settings"`
	}
	if code := dirGet(t, srv, "GET", "/v1/organizations/"+org, &o); code != http.StatusOK {
		t.Fatalf("GET organization %s = %d", org, code)
	}
	return o.Settings
}

// TestPatchNullResetsEverySetting sets each organization setting, then
// PATCHes it with null and expects it gone (back to the daemon default),
// with the other settings left alone. A setting without a row fails the
// test, so a new setting cannot miss the rule.
func TestPatchNullResetsEverySetting(t *testing.T) {
	values := map[string]string{
		"users_patterns":           `["users_*.csv"]`,
		"user_groups_patterns":     `["memberships_*.csv"]`,
		"groups_patterns":          `["teams_*.csv"]`,
		"delete_threshold_percent": `35`,
		"delete_threshold_count":   `50`,
		"inactive_users":           `"delete"`,
		"settle":                   `"1m0s"`,
		"storage_quota":            `1073741824`,
		"columns":                  `{"Employee ID":"user_id"}`,
		"status_values":            `{"Terminated":"inactive"}`,
		"date_format":              `"MM/DD/YYYY"`,
		"groups_from_columns":      `[{"column":"department_name","template":"Dept: {value}"}]`,
		"pgp_key_file":             strconv.Quote(testPGPKeyFile(t)),
		"require_signature":        `true`,
		"setup_all_keys":           `true`,
	}
	st := reflect.TypeFor[state.Settings]()
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		if _, ok := values[name]; !ok {
			t.Errorf("setting %q has no row in this test; add one with a non-default value", name)
		}
	}
	srv, _ := dirTestServer(t, Config{})
	if code := dirSend(t, srv, "POST", "/v1/organizations", `{"name":"acme"}`, nil); code != http.StatusCreated {
		t.Fatalf("create acme = %d", code)
	}
	for name, value := range values {
		t.Run(name, func(t *testing.T) {
			all := map[string]json.RawMessage{}
			for k, v := range values {
				all[k] = json.RawMessage(v)
			}
			body, _ := json.Marshal(map[string]any{"settings": all})
			if code := dirSend(t, srv, "PATCH", "/v1/organizations/acme", string(body), nil); code != http.StatusOK {
				t.Fatalf("PATCH every setting = %d", code)
			}
			if got := settingsJSON(t, srv, "acme")[name]; !jsonEqual(got, json.RawMessage(value)) {
				t.Fatalf("settings.%s after PATCH = %s; want %s", name, got, value)
			}
			if code := dirSend(t, srv, "PATCH", "/v1/organizations/acme", `{"settings":{"`+name+`":null}}`, nil); code != http.StatusOK {
				t.Fatalf("PATCH %s null = %d; want 200", name, code)
			}
			got := settingsJSON(t, srv, "acme")
			if v, ok := got[name]; ok {
				t.Errorf("settings.%s after PATCH null = %s; want it absent (the daemon default)", name, v)
			}
			for k, v := range values {
				if k != name && !jsonEqual(got[k], json.RawMessage(v)) {
					t.Errorf("PATCH %s null changed settings.%s to %s; want %s", name, k, got[k], v)
				}
			}
		})
	}
}

func TestPatchSettingsRefusesBadInput(t *testing.T) {
	srv, _ := dirTestServer(t, Config{})
	dirSend(t, srv, "POST", "/v1/organizations", `{"name":"acme","settings":{"inactive_users":"delete"}}`, nil)
	for _, body := range []string{
		`{"settings":{"nope":null}}`,
		`{"settings":{"nope":1}}`,
		`{"settings":{"settle":"soon"}}`,
		`{"settings":{"delete_threshold_percent":"20"}}`,
		`{"settings":{"delete_threshold_percent":101}}`,
		`{"settings":[1]}`,
		`{"settings":null}`,
		`{}`,
	} {
		var e errorBody
		code := dirSend(t, srv, "PATCH", "/v1/organizations/acme", body, &e)
		if code != http.StatusBadRequest || e.Error.Code != "invalid_settings" && e.Error.Code != "invalid_json" {
			t.Errorf("PATCH %s = %d %+v; want 400 invalid_settings", body, code, e)
		}
	}
	if got := settingsJSON(t, srv, "acme"); len(got) != 1 || string(got["inactive_users"]) != `"delete"` {
		t.Errorf("settings after refused PATCHes = %v; want them unchanged", got)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}
