// Package apiparity extracts the exported API of a Go package folder from its
// source, so a test can prove that every learner day (week1/day1 …) and its
// reference (solutions/week1/day1 …) export the same names with the same
// signatures and the same doc comments. Parameter names and unexported struct
// fields may differ; types and documentation may not, so a stub can never
// promise something its reference does not do.
package apiparity

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// API maps each exported declaration ("func Softmax", "method (*MultiHeadAttention).Forward",
// "type MultiHeadAttention", "const X") to its normalised signature and doc comment.
type API map[string]Decl

// Decl is one exported declaration: its signature with the layout collapsed,
// and its doc comment with the line breaks collapsed ("" when it has none).
type Decl struct {
	Sig, Doc string
}

// Extract reads the non-test .go files of dir.
func Extract(dir string) (API, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	api := API{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				addFunc(api, fset, d)
			case *ast.GenDecl:
				addGen(api, fset, d)
			}
		}
	}
	return api, nil
}

func addFunc(api API, fset *token.FileSet, d *ast.FuncDecl) {
	if !d.Name.IsExported() {
		return
	}
	key := "func " + d.Name.Name
	if d.Recv != nil && len(d.Recv.List) == 1 {
		recv := render(fset, d.Recv.List[0].Type)
		if !ast.IsExported(strings.TrimLeft(recv, "*")) {
			return
		}
		key = "method (" + recv + ")." + d.Name.Name
	}
	api[key] = Decl{render(fset, stripNames(d.Type)), doc(d.Doc)}
}

// doc returns a doc comment's text with its layout collapsed.
func doc(groups ...*ast.CommentGroup) string {
	for _, g := range groups {
		if g != nil {
			return strings.Join(strings.Fields(g.Text()), " ")
		}
	}
	return ""
}

func addGen(api API, fset *token.FileSet, d *ast.GenDecl) {
	for _, spec := range d.Specs {
		switch s := spec.(type) {
		case *ast.TypeSpec:
			if !s.Name.IsExported() {
				continue
			}
			typ := s.Type
			if st, ok := typ.(*ast.StructType); ok {
				typ = exportedFields(st)
			}
			api["type "+s.Name.Name] = Decl{render(fset, typ), doc(s.Doc, d.Doc)}
		case *ast.ValueSpec:
			for _, name := range s.Names {
				if !name.IsExported() {
					continue
				}
				sig := ""
				if s.Type != nil {
					sig = render(fset, s.Type)
				}
				api[d.Tok.String()+" "+name.Name] = Decl{sig, doc(s.Doc, d.Doc)}
			}
		}
	}
}

// stripNames drops parameter names so that `func(x, w *T)` equals `func(a, b *T)`.
func stripNames(ft *ast.FuncType) *ast.FuncType {
	strip := func(fl *ast.FieldList) *ast.FieldList {
		if fl == nil {
			return nil
		}
		out := &ast.FieldList{}
		for _, f := range fl.List {
			n := len(f.Names)
			if n == 0 {
				n = 1
			}
			for i := 0; i < n; i++ {
				out.List = append(out.List, &ast.Field{Type: f.Type})
			}
		}
		return out
	}
	return &ast.FuncType{TypeParams: ft.TypeParams, Params: strip(ft.Params), Results: strip(ft.Results)}
}

// exportedFields keeps only the exported fields of a struct, one per line.
func exportedFields(st *ast.StructType) *ast.StructType {
	out := &ast.StructType{Fields: &ast.FieldList{}}
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 { // embedded
			out.Fields.List = append(out.Fields.List, &ast.Field{Type: f.Type})
			continue
		}
		for _, n := range f.Names {
			if n.IsExported() {
				out.Fields.List = append(out.Fields.List, &ast.Field{Names: []*ast.Ident{ast.NewIdent(n.Name)}, Type: f.Type})
			}
		}
	}
	return out
}

func render(fset *token.FileSet, node ast.Node) string {
	var b bytes.Buffer
	if err := printer.Fprint(&b, fset, node); err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	// Collapse layout so that only the tokens count.
	return strings.Join(strings.Fields(b.String()), " ")
}

// Diff lists the differences between a learner API and its reference, one line
// each, sorted; empty means identical.
func Diff(learner, solution API) []string {
	var out []string
	for k, want := range solution {
		got, ok := learner[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: in the solution, missing from the learner stub", k))
		case got.Sig != want.Sig:
			out = append(out, fmt.Sprintf("%s: learner has %s, solution has %s", k, got.Sig, want.Sig))
		case got.Doc != want.Doc:
			out = append(out, fmt.Sprintf("%s: the doc comments differ:\n\tlearner:  %s\n\tsolution: %s", k, got.Doc, want.Doc))
		}
	}
	for k := range learner {
		if _, ok := solution[k]; !ok {
			out = append(out, fmt.Sprintf("%s: in the learner stub, missing from the solution", k))
		}
	}
	sort.Strings(out)
	return out
}

// DayDirs returns the learner day folders under root (week1/day1 …), relative.
func DayDirs(root string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(root, "week[0-9]", "day[0-9]"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			rel, _ := filepath.Rel(root, m)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	sort.Strings(out)
	return out, nil
}
