// Command doccheck checks Spillway's comments, as CI runs it
// (`go run ./scripts/doccheck`):
//
//   - every doc comment of a declaration (function, method, type, and a
//     constant or variable declared on its own) starts with the name it
//     documents, optionally after "A", "An" or "The", exported or not, so
//     that a renamed identifier cannot keep a stale comment (test, fuzz,
//     benchmark and example functions say what they show instead);
//   - no comment points at a numbered section of a document outside the
//     repository.
//
// It prints one line per problem and exits 1 when there is any.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	problems, err := check(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "doccheck:", err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "doccheck: %d problems\n", len(problems))
		os.Exit(1)
	}
}

// check walks every Go file under root, skipping hidden and testdata
// directories, and returns the problems found.
func check(root string) ([]string, error) {
	var problems []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		problems = append(problems, checkFile(fset, f)...)
		return nil
	})
	return problems, err
}

func checkFile(fset *token.FileSet, f *ast.File) []string {
	var out []string
	report := func(pos token.Pos, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: %s", fset.Position(pos), fmt.Sprintf(format, args...)))
	}
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.Contains(c.Text, "§") {
				report(c.Pos(), "comment refers to a section (§) of a document outside the repository")
			}
		}
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if isTestFunc(fset, d) {
				// Tests say what they show, as Go tests do.
				continue
			}
			if msg := mismatch(d.Doc, d.Name.Name); msg != "" {
				report(d.Doc.Pos(), "doc comment of %s %s", d.Name.Name, msg)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				var doc *ast.CommentGroup
				var names []string
				switch s := spec.(type) {
				case *ast.TypeSpec:
					doc, names = s.Doc, []string{s.Name.Name}
				case *ast.ValueSpec:
					if d.Lparen != token.NoPos {
						// Comments inside a const or var group often
						// head a run of related values.
						continue
					}
					doc = s.Doc
					for _, n := range s.Names {
						names = append(names, n.Name)
					}
				}
				// A group's comment (before "const (") describes the
				// group, not one name; so does a comment on a spec that
				// declares several names.
				if doc == nil && len(d.Specs) == 1 && d.Lparen == token.NoPos {
					doc = d.Doc
				}
				if doc == nil || len(names) != 1 || names[0] == "_" {
					continue
				}
				if msg := mismatch(doc, names[0]); msg != "" {
					report(doc.Pos(), "doc comment of %s %s", names[0], msg)
				}
			}
		}
	}
	return out
}

// mismatch returns why doc does not start with name, or "".
func mismatch(doc *ast.CommentGroup, name string) string {
	if doc == nil {
		return ""
	}
	text := doc.Text()
	if strings.HasPrefix(text, "go:") || strings.HasPrefix(strings.TrimSpace(text), "Deprecated") {
		return ""
	}
	words := strings.Fields(text)
	if len(words) == 0 {
		return ""
	}
	first := words[0]
	if (first == "A" || first == "An" || first == "The") && len(words) > 1 {
		first = words[1]
	}
	first = strings.TrimRight(first, ".,:;'")
	first = strings.TrimSuffix(first, "'s")
	if first == name {
		return ""
	}
	return fmt.Sprintf("starts with %q, not the name", words[0])
}

// isTestFunc reports a Test, Fuzz, Benchmark or Example function of a
// _test.go file.
func isTestFunc(fset *token.FileSet, d *ast.FuncDecl) bool {
	if d.Recv != nil || !strings.HasSuffix(fset.Position(d.Pos()).Filename, "_test.go") {
		return false
	}
	for _, p := range []string{"Test", "Fuzz", "Benchmark", "Example"} {
		if strings.HasPrefix(d.Name.Name, p) {
			return true
		}
	}
	return false
}
