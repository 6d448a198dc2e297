package main

import (
	"go/parser"
	"go/token"
	"io/fs"
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
	".":                 {"cli"},
	"cli":               {"bot", "bot/history", "bot/interact", "service", "ruleset", "store", "detect"},
	"bot":               {"bot/catchup", "bot/socket", "bot/scan", "bot/message", "bot/history", "bot/notify", "bot/deleter", "bot/interact", "bot/slackapi", "bot/metrics", "bot/internal/wait", "service", "ruleset", "store", "detect"},
	"bot/socket":        {"bot/slackapi", "bot/metrics"},
	"bot/catchup":       {"bot/scan", "bot/socket", "bot/history", "bot/notify", "bot/metrics", "bot/internal/wait", "store"},
	"bot/scan":          {"bot/message", "bot/history", "bot/notify", "bot/metrics", "bot/internal/wait", "ruleset", "store", "detect"},
	"bot/message":       {"detect"},
	"bot/history":       {"bot/message", "bot/notify", "bot/slackapi", "bot/metrics", "bot/internal/wait", "ruleset", "store", "detect"},
	"bot/notify":        {"bot/interact", "bot/slackapi", "bot/metrics", "bot/internal/wait", "store", "detect"},
	"bot/deleter":       {"bot/notify", "bot/slackapi", "bot/metrics", "bot/internal/wait", "store"},
	"bot/interact":      {"service", "store", "detect"},
	"bot/slackapi":      {},
	"bot/metrics":       {},
	"bot/internal/wait": {},
	"service":           {"store"},
	"ruleset":           {"store", "detect"},
	"store":             {},
	"detect":            {},
}

// TestImportRules checks every non-test file of the product packages
// against allowedImports, so that the map in the README stays true.
func TestImportRules(t *testing.T) {
	// Every product package is on the map: a new one must say what it
	// may import.
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || path == "internal" || path == "deploy") {
			return filepath.SkipDir
		}
		code, _ := filepath.Glob(filepath.Join(path, "*.go"))
		code = slices.DeleteFunc(code, func(f string) bool { return strings.HasSuffix(f, "_test.go") })
		if _, listed := allowedImports[filepath.ToSlash(path)]; len(code) > 0 && !listed {
			t.Errorf("package %s is not on the import map (allowedImports, and the README's package map)", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
