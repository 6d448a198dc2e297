package store

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseMigrations(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name    string
		files   []string
		want    []int
		wantErr string
	}{
		{"in order", []string{"0002_b.sql", "0001_a.sql", "0003_c.sql"}, []int{1, 2, 3}, ""},
		{"version from the prefix, not the position", []string{"0001_z.sql", "0002_a.sql"}, []int{1, 2}, ""},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, nil, "version 3, want 2"},
		{"repeat", []string{"0001_a.sql", "0001_b.sql"}, nil, "want 2"},
		{"no prefix", []string{"0001_a.sql", "init.sql"}, nil, "4-digit version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tt.files {
				fsys["m/"+f] = file
			}
			ms, err := parseMigrations(fsys, "m", 1)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range ms {
				if m.version != tt.want[i] {
					t.Errorf("migration %d: version %d, want %d", i, m.version, tt.want[i])
				}
			}
		})
	}
	// Both databases are at the same version at every release: a schema
	// change is one number on both.
	lite, err := latestVersion(sqliteDialect)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := latestVersion(postgresDialect)
	if err != nil {
		t.Fatal(err)
	}
	if lite != pg {
		t.Errorf("SQLite's schema is at version %d, PostgreSQL's at %d: add the migration to both", lite, pg)
	}
}
