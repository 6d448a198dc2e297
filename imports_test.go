package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/securechat/securechat/"

// allowedImports is the README's "What may import what": for each
// package, the packages of this module its non-test files may import.
// internal/ packages are test and demo doubles: only cli/demo.go may use
// one outside tests.
var allowedImports = map[string][]string{
	".":            {"cli"},
	"cli":          {"bot", "bot/interact", "service", "ruleset", "store", "detect"},
	"bot":          {"bot/interact", "service", "ruleset", "store", "detect"},
	"bot/interact": {"service", "store"},
	"service":      {"store"},
	"ruleset":      {"store", "detect"},
	"store":        {},
	"detect":       {},
}

// TestImportRules checks every non-test file of the product packages
// against allowedImports, so that the map in the README stays true.
func TestImportRules(t *testing.T) {
	fset := token.NewFileSet()
	for dir, allowed := range allowedImports {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("package %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				rest, ours := strings.CutPrefix(path, module)
				if !ours {
					continue
				}
				if strings.HasPrefix(rest, "internal/") {
					if f != filepath.Join("cli", "demo.go") || rest != "internal/fakeslack" {
						t.Errorf("%s imports %s: internal packages are for tests (and the demo's fake Slack)", f, rest)
					}
					continue
				}
				if !slices.Contains(allowed, rest) {
					t.Errorf("%s imports %s; %s may import only %v (README, Package map)", f, rest, dir, allowed)
				}
			}
		}
	}
}
