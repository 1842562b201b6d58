package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The NIST OSCAL JSON schema could not be obtained here (no package
// registry reachable from this project ships it), so this test checks the
// assessment-results document against the OSCAL 1.1 model's rules as
// NIST's reference documents them: the fields each object may and must
// have, the allowed values, and the UUID, date-time, token and string
// patterns. Replace it with schema validation once the schema is vendored
// under testdata.

var (
	oscalUUID     = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[45][0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}$`)
	oscalDateTime = regexp.MustCompile(`^(((2000|2400|2800|(19|2[0-9](0[48]|[2468][048]|[13579][26])))-02-29)|(((19|2[0-9])[0-9]{2})-02-(0[1-9]|1[0-9]|2[0-8]))|(((19|2[0-9])[0-9]{2})-(0[13578]|10|12)-(0[1-9]|[12][0-9]|3[01]))|(((19|2[0-9])[0-9]{2})-(0[469]|11)-(0[1-9]|[12][0-9]|30)))T(2[0-3]|[01][0-9]):([0-5][0-9]):([0-5][0-9])(\.[0-9]+)?(Z|(-((0[0-9]|1[0-2]):00|0[39]:30)|\+((0[0-9]|1[0-4]):00|(0[34569]|10):30|(0[58]|12):45)))$`)
	oscalToken    = regexp.MustCompile(`^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$`)
	oscalString   = regexp.MustCompile(`^\S(.*\S)?$`)
)

// oscalFields lists, per object, the fields OSCAL 1.1 allows and (first,
// before "|") those it requires.
var oscalFields = map[string]string{
	"document":            "assessment-results|",
	"assessment-results":  "uuid metadata import-ap results|local-definitions back-matter",
	"metadata":            "title last-modified version oscal-version|published revisions document-ids props links roles locations parties responsible-parties actions remarks",
	"prop":                "name value|uuid ns class group remarks",
	"import-ap":           "href|remarks",
	"result":              "uuid title description start reviewed-controls|props links end local-definitions attestations assessment-log observations risks findings remarks",
	"reviewed-controls":   "control-selections|description props links control-objective-selections remarks",
	"control-selection":   "|description props links include-all include-controls exclude-controls remarks",
	"include-control":     "control-id|statement-ids",
	"observation":         "uuid description methods collected|title props links types origins subjects relevant-evidence expires remarks",
	"relevant-evidence":   "description|href props links remarks",
	"finding":             "uuid title description target|props links origins implementation-statement-uuid related-observations related-risks remarks",
	"target":              "type target-id status|title description props links implementation-status remarks",
	"status":              "state|reason remarks",
	"related-observation": "observation-uuid|",
	"back-matter":         "|resources",
	"resource":            "uuid|title description props document-ids citation rlinks base64 remarks",
}

type oscalChecker struct {
	errs  []string
	uuids map[string]string
}

func (c *oscalChecker) fail(path, format string, args ...interface{}) {
	c.errs = append(c.errs, path+": "+fmt.Sprintf(format, args...))
}

// object checks an object's fields and returns it.
func (c *oscalChecker) object(path, kind string, v interface{}) map[string]interface{} {
	m, ok := v.(map[string]interface{})
	if !ok {
		c.fail(path, "want a %s object, found %T", kind, v)
		return nil
	}
	spec := strings.SplitN(oscalFields[kind], "|", 2)
	allowed := map[string]bool{}
	for _, f := range strings.Fields(spec[0]) {
		allowed[f] = true
		if _, ok := m[f]; !ok {
			c.fail(path, "%s: required field %q missing", kind, f)
		}
	}
	for _, f := range strings.Fields(spec[1]) {
		allowed[f] = true
	}
	for k := range m {
		if !allowed[k] {
			c.fail(path, "%s: field %q is not in the OSCAL model", kind, k)
		}
	}
	return m
}

func (c *oscalChecker) list(path string, v interface{}, min int) []interface{} {
	l, ok := v.([]interface{})
	if !ok && v != nil {
		c.fail(path, "want an array, found %T", v)
	}
	if len(l) < min {
		c.fail(path, "want at least %d items, found %d", min, len(l))
	}
	return l
}

func (c *oscalChecker) str(path string, v interface{}, re *regexp.Regexp) string {
	s, ok := v.(string)
	if !ok {
		c.fail(path, "want a string, found %T", v)
		return ""
	}
	if re != nil && !re.MatchString(s) {
		c.fail(path, "%q does not match %s", s, re)
	}
	return s
}

func (c *oscalChecker) uuid(path string, v interface{}) string {
	s := c.str(path, v, oscalUUID)
	if prev, dup := c.uuids[s]; dup {
		c.fail(path, "UUID %s is already used at %s", s, prev)
	}
	c.uuids[s] = path
	return s
}

func (c *oscalChecker) oneOf(path string, v interface{}, values ...string) {
	s := c.str(path, v, oscalToken)
	for _, ok := range values {
		if s == ok {
			return
		}
	}
	c.fail(path, "%q is not one of %v", s, values)
}

func (c *oscalChecker) props(path string, v interface{}) {
	for i, p := range c.list(path, v, 0) {
		pp := fmt.Sprintf("%s[%d]", path, i)
		m := c.object(pp, "prop", p)
		c.str(pp+".name", m["name"], oscalToken)
		c.str(pp+".value", m["value"], oscalString)
	}
}

func checkOSCAL(t *testing.T, data []byte) []string {
	t.Helper()
	var doc interface{}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	c := &oscalChecker{uuids: map[string]string{}}
	top := c.object("$", "document", doc)
	ar := c.object("assessment-results", "assessment-results", top["assessment-results"])
	c.uuid("assessment-results.uuid", ar["uuid"])
	md := c.object("metadata", "metadata", ar["metadata"])
	c.str("metadata.title", md["title"], oscalString)
	c.str("metadata.last-modified", md["last-modified"], oscalDateTime)
	c.str("metadata.version", md["version"], oscalString)
	c.str("metadata.oscal-version", md["oscal-version"], regexp.MustCompile(`^1\.1\.[0-9]+$`))
	c.props("metadata.props", md["props"])

	resources := map[string]bool{}
	if bm := c.object("back-matter", "back-matter", ar["back-matter"]); bm != nil {
		for i, r := range c.list("back-matter.resources", bm["resources"], 1) {
			rm := c.object(fmt.Sprintf("back-matter.resources[%d]", i), "resource", r)
			resources[c.uuid(fmt.Sprintf("back-matter.resources[%d].uuid", i), rm["uuid"])] = true
		}
	}
	ap := c.object("import-ap", "import-ap", ar["import-ap"])
	if href := c.str("import-ap.href", ap["href"], nil); !resources[strings.TrimPrefix(href, "#")] {
		c.fail("import-ap.href", "%q names no back-matter resource", href)
	}

	for i, res := range c.list("results", ar["results"], 1) {
		rp := fmt.Sprintf("results[%d]", i)
		r := c.object(rp, "result", res)
		c.uuid(rp+".uuid", r["uuid"])
		c.str(rp+".title", r["title"], oscalString)
		c.str(rp+".start", r["start"], oscalDateTime)
		c.props(rp+".props", r["props"])
		rc := c.object(rp+".reviewed-controls", "reviewed-controls", r["reviewed-controls"])
		for j, sel := range c.list(rp+".reviewed-controls.control-selections", rc["control-selections"], 1) {
			sp := fmt.Sprintf("%s.reviewed-controls.control-selections[%d]", rp, j)
			s := c.object(sp, "control-selection", sel)
			for k, ic := range c.list(sp+".include-controls", s["include-controls"], 1) {
				ip := fmt.Sprintf("%s.include-controls[%d]", sp, k)
				c.str(ip+".control-id", c.object(ip, "include-control", ic)["control-id"], oscalToken)
			}
		}
		observations := map[string]bool{}
		for j, o := range c.list(rp+".observations", r["observations"], 0) {
			op := fmt.Sprintf("%s.observations[%d]", rp, j)
			om := c.object(op, "observation", o)
			observations[c.uuid(op+".uuid", om["uuid"])] = true
			c.str(op+".collected", om["collected"], oscalDateTime)
			c.props(op+".props", om["props"])
			for k, m := range c.list(op+".methods", om["methods"], 1) {
				c.oneOf(fmt.Sprintf("%s.methods[%d]", op, k), m, "EXAMINE", "INTERVIEW", "TEST", "UNKNOWN")
			}
			for k, re := range c.list(op+".relevant-evidence", om["relevant-evidence"], 0) {
				c.object(fmt.Sprintf("%s.relevant-evidence[%d]", op, k), "relevant-evidence", re)
			}
		}
		for j, f := range c.list(rp+".findings", r["findings"], 0) {
			fp := fmt.Sprintf("%s.findings[%d]", rp, j)
			fm := c.object(fp, "finding", f)
			c.uuid(fp+".uuid", fm["uuid"])
			c.props(fp+".props", fm["props"])
			tm := c.object(fp+".target", "target", fm["target"])
			c.oneOf(fp+".target.type", tm["type"], "statement-id", "objective-id")
			c.str(fp+".target.target-id", tm["target-id"], oscalToken)
			st := c.object(fp+".target.status", "status", tm["status"])
			c.oneOf(fp+".target.status.state", st["state"], "satisfied", "not-satisfied")
			if reason, ok := st["reason"]; ok {
				c.oneOf(fp+".target.status.reason", reason, "pass", "fail", "other")
			}
			for k, ro := range c.list(fp+".related-observations", fm["related-observations"], 0) {
				rop := fmt.Sprintf("%s.related-observations[%d]", fp, k)
				ref := c.str(rop+".observation-uuid", c.object(rop, "related-observation", ro)["observation-uuid"], oscalUUID)
				if !observations[ref] {
					c.fail(rop, "observation %s is not in the result", ref)
				}
			}
		}
	}
	sort.Strings(c.errs)
	return c.errs
}

func TestWriteOSCAL_FollowsTheAssessmentResultsModel(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteOSCAL(&buf, fixtureReport(t)); err != nil {
		t.Fatal(err)
	}
	for _, e := range checkOSCAL(t, buf.Bytes()) {
		t.Error(e)
	}
}

// The checker itself must catch what the schema would reject.
func TestCheckOSCAL_CatchesViolations(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteOSCAL(&buf, fixtureReport(t)); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown field", `"oscal-version"`, `"oscal_version": "x", "oscal-version"`, `field "oscal_version" is not in the OSCAL model`},
		{"bad UUID", `"uuid": "`, `"uuid": "x`, "does not match"},
		{"date without zone", `"start": "2026-11-26T12:00:00Z"`, `"start": "2026-11-26T12:00:00"`, "results[0].start"},
		{"state outside the enum", `"state": "not-satisfied"`, `"state": "partial"`, `"partial" is not one of`},
		{"empty property value", `"value": "6"`, `"value": " "`, "does not match"},
		{"dangling observation", `"observation-uuid": "`, `"observation-uuid": "0`, "observation-uuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(good, tc.old, tc.new, 1)
			if bad == good {
				t.Fatalf("%q not found in the document", tc.old)
			}
			errs := strings.Join(checkOSCAL(t, []byte(bad)), "\n")
			if !strings.Contains(errs, tc.want) {
				t.Errorf("errors lack %q:\n%s", tc.want, errs)
			}
		})
	}
}
