package compliance

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed data/catalog.yaml
var defaultCatalog []byte

//go:embed data/mapping.yaml
var defaultMapping []byte

// Catalog lists the controls a report covers (kind ControlCatalog).
type Catalog struct {
	APIVersion string `yaml:"apiVersion" json:"-"`
	Kind       string `yaml:"kind" json:"-"`
	Name       string `yaml:"name" json:"name"`
	Version    string `yaml:"version" json:"version"`
	Title      string `yaml:"title" json:"title"`
	// Disclaimer says how far the report can be relied on; every rendering
	// shows it.
	Disclaimer string    `yaml:"disclaimer" json:"disclaimer"`
	Families   []Family  `yaml:"families" json:"families"`
	Controls   []Control `yaml:"controls" json:"-"`
}

// Family is a control family (AC, AU, ...).
type Family struct {
	ID    string `yaml:"id" json:"id"`
	Title string `yaml:"title" json:"title"`
}

// Control is one catalogue entry.
type Control struct {
	// ID is the control ID as ITSG-33 and NIST SP 800-53 write it, e.g.
	// AC-6 or IA-5(7).
	ID    string `yaml:"id" json:"id"`
	Title string `yaml:"title" json:"title"`
	// Family defaults to the ID's prefix.
	Family string `yaml:"family" json:"family"`
	// Note qualifies the control's coverage for the reader.
	Note string `yaml:"note" json:"note,omitempty"`
}

// Mapping says which evidence bears on which controls (kind
// ControlMapping).
type Mapping struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Name       string `yaml:"name"`
	Version    string `yaml:"version"`
	Rules      []Rule `yaml:"rules"`
}

// Rule maps the evidence it selects to controls.
type Rule struct {
	Name   string `yaml:"name"`
	Source Source `yaml:"source"`
	// IDs are globs over evidence IDs ("*" matches any run of
	// characters); empty selects all of the source's evidence.
	IDs []string `yaml:"ids"`
	// Controls are the control IDs the selected evidence bears on.
	Controls []string `yaml:"controls"`
	// ControlsFromLabel names an evidence label holding control IDs,
	// comma-separated, that the evidence bears on too.
	ControlsFromLabel string `yaml:"controlsFromLabel"`

	patterns []*regexp.Regexp
}

// Model is a catalogue and a mapping that agree with each other.
type Model struct {
	Catalog Catalog
	Mapping Mapping
	// CatalogOrigin and MappingOrigin name the files they were read from
	// ("built-in" for the shipped ones).
	CatalogOrigin string
	MappingOrigin string

	controls map[string]*Control
}

// BuiltIn is the origin of the shipped catalogue and mapping.
const BuiltIn = "built-in"

// LoadModel reads the catalogue and mapping files; an empty name selects
// the shipped one. Problems name the file, the line and the field.
func LoadModel(catalogFile, mappingFile string) (*Model, error) {
	read := func(name string, def []byte) ([]byte, string, error) {
		if name == "" {
			return def, BuiltIn, nil
		}
		b, err := os.ReadFile(name)
		return b, name, err
	}
	cb, corigin, err := read(catalogFile, defaultCatalog)
	if err != nil {
		return nil, err
	}
	mb, morigin, err := read(mappingFile, defaultMapping)
	if err != nil {
		return nil, err
	}
	return ParseModel(corigin, cb, morigin, mb)
}

// DefaultModel is the shipped catalogue and mapping.
func DefaultModel() *Model {
	m, err := ParseModel(BuiltIn, defaultCatalog, BuiltIn, defaultMapping)
	if err != nil {
		panic(fmt.Sprintf("the shipped compliance model is invalid: %v", err)) // a test guards this
	}
	return m
}

// ParseModel decodes and checks a catalogue and a mapping: unknown fields,
// malformed or duplicate control IDs, unknown sources, bad globs and rules
// that name controls outside the catalogue are all errors.
func ParseModel(catalogName string, catalog []byte, mappingName string, mapping []byte) (*Model, error) {
	m := &Model{CatalogOrigin: catalogName, MappingOrigin: mappingName, controls: map[string]*Control{}}
	croot, err := decodeStrict(catalogName, catalog, &m.Catalog)
	if err != nil {
		return nil, err
	}
	mroot, err := decodeStrict(mappingName, mapping, &m.Mapping)
	if err != nil {
		return nil, err
	}
	var errs []error
	cerr := func(line int, format string, args ...interface{}) {
		errs = append(errs, fmt.Errorf("%s:%d: ControlCatalog %q: %s", catalogName, line, m.Catalog.Name, fmt.Sprintf(format, args...)))
	}
	merr := func(line int, format string, args ...interface{}) {
		errs = append(errs, fmt.Errorf("%s:%d: ControlMapping %q: %s", mappingName, line, m.Mapping.Name, fmt.Sprintf(format, args...)))
	}
	if m.Catalog.Kind != "ControlCatalog" {
		cerr(lineOf(croot, "kind"), "kind: must be ControlCatalog, found %q", m.Catalog.Kind)
	}
	if m.Mapping.Kind != "ControlMapping" {
		merr(lineOf(mroot, "kind"), "kind: must be ControlMapping, found %q", m.Mapping.Kind)
	}
	if m.Catalog.Name == "" {
		cerr(lineOf(croot), "name: required")
	}
	if m.Mapping.Name == "" {
		merr(lineOf(mroot), "name: required")
	}
	families := map[string]bool{}
	for i, f := range m.Catalog.Families {
		if f.ID == "" || f.Title == "" {
			cerr(lineOf(croot, "families", i), "families[%d]: id and title are required", i)
		}
		families[f.ID] = true
	}
	if len(m.Catalog.Controls) == 0 {
		cerr(lineOf(croot), "controls: the catalogue lists no control")
	}
	for i := range m.Catalog.Controls {
		c := &m.Catalog.Controls[i]
		line := lineOf(croot, "controls", i)
		id, ok := NormalizeControlID(c.ID)
		if !ok {
			cerr(line, "controls[%d].id: %q is not a control ID such as AC-6 or IA-5(7)", i, c.ID)
			continue
		}
		c.ID = id
		if c.Title == "" {
			cerr(line, "controls[%d].title: required (control %s)", i, id)
		}
		if c.Family == "" {
			c.Family = id[:2]
		}
		if !families[c.Family] {
			cerr(line, "controls[%d].family: %q is not among the catalogue's families", i, c.Family)
		}
		if _, dup := m.controls[id]; dup {
			cerr(line, "controls[%d].id: %s is listed twice", i, id)
		}
		m.controls[id] = c
	}
	for i := range m.Mapping.Rules {
		r := &m.Mapping.Rules[i]
		line := lineOf(mroot, "rules", i)
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("rules[%d]", i)
		}
		if !slices.Contains(Sources, r.Source) {
			merr(line, "rule %s: source: %q is not one of %s", name, r.Source, joinSources())
		}
		if len(r.Controls) == 0 && r.ControlsFromLabel == "" {
			merr(line, "rule %s: names no controls and no controlsFromLabel", name)
		}
		for j, c := range r.Controls {
			id, ok := NormalizeControlID(c)
			switch {
			case !ok:
				merr(line, "rule %s: controls[%d]: %q is not a control ID such as AC-6 or IA-5(7)", name, j, c)
			case m.controls[id] == nil:
				merr(line, "rule %s: controls[%d]: %s is not in the catalogue %q", name, j, id, m.Catalog.Name)
			default:
				r.Controls[j] = id
			}
		}
		for _, g := range r.IDs {
			if g == "" {
				merr(line, "rule %s: ids: an empty pattern selects nothing", name)
				continue
			}
			r.patterns = append(r.patterns, globRegexp(g))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// Control returns the catalogue entry for id, or nil.
func (m *Model) Control(id string) *Control {
	if n, ok := NormalizeControlID(id); ok {
		return m.controls[n]
	}
	return nil
}

// FamilyTitle returns a family's title, or its ID.
func (m *Model) FamilyTitle(id string) string {
	for _, f := range m.Catalog.Families {
		if f.ID == id {
			return f.Title
		}
	}
	return id
}

// Controls returns the control IDs the evidence bears on, sorted, and the
// control IDs it names that are malformed or outside the catalogue.
func (m *Model) Controls(e *Evidence) (ids, unknown []string) {
	set := map[string]bool{}
	bad := map[string]bool{}
	for i := range m.Mapping.Rules {
		r := &m.Mapping.Rules[i]
		if r.Source != e.Source || !r.selects(e.ID) {
			continue
		}
		for _, c := range r.Controls {
			set[c] = true
		}
		if r.ControlsFromLabel == "" {
			continue
		}
		for _, c := range strings.Split(e.Labels[r.ControlsFromLabel], ",") {
			if c = strings.TrimSpace(c); c == "" {
				continue
			}
			if id, ok := NormalizeControlID(c); ok && m.controls[id] != nil {
				set[id] = true
			} else {
				bad[c] = true
			}
		}
	}
	return m.sortControls(set), sortedSet(bad)
}

// sortControls orders control IDs as the catalogue lists them.
func (m *Model) sortControls(set map[string]bool) []string {
	var out []string
	for _, c := range m.Catalog.Controls {
		if set[c.ID] {
			out = append(out, c.ID)
		}
	}
	return out
}

func (r *Rule) selects(id string) bool {
	if len(r.patterns) == 0 {
		return true
	}
	for _, p := range r.patterns {
		if p.MatchString(id) {
			return true
		}
	}
	return false
}

var controlIDPattern = regexp.MustCompile(`^([A-Za-z]{2})-(\d{1,3})(?:\((\d{1,3})\)|\.(\d{1,3}))?$`)

// NormalizeControlID writes a control ID as the catalogue does: "ac-6" is
// AC-6, "ia-5.7" (OSCAL's form) is IA-5(7).
func NormalizeControlID(s string) (string, bool) {
	m := controlIDPattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", false
	}
	id := strings.ToUpper(m[1]) + "-" + strings.TrimLeft(m[2], "0")
	if enh := m[3] + m[4]; enh != "" {
		id += "(" + strings.TrimLeft(enh, "0") + ")"
	}
	return id, true
}

// globRegexp compiles a glob where "*" matches any run of characters.
func globRegexp(g string) *regexp.Regexp {
	parts := strings.Split(g, "*")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

func joinSources() string {
	var s []string
	for _, src := range Sources {
		s = append(s, string(src))
	}
	return strings.Join(s, ", ")
}

func sortedSet(set map[string]bool) []string {
	var out []string
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// decodeStrict decodes one YAML document into v, rejecting unknown fields,
// and returns its node tree for locating fields.
func decodeStrict(name string, data []byte, v interface{}) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &root, nil
}

// lineOf returns the line of the node at path (map keys and list
// indices), or of the document when the path is missing.
func lineOf(root *yaml.Node, path ...interface{}) int {
	n := root
	for n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n == nil {
		return 0
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch key := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == key {
						next = n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && key >= 0 && key < len(n.Content) {
				next = n.Content[key]
			}
		}
		if next == nil {
			return line
		}
		n, line = next, next.Line
	}
	return line
}
