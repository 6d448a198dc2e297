// Package deploy holds the Dockerfile, the systemd unit and the Kubernetes
// manifest. No Docker engine or cluster runs where the tests run, so these
// tests check what can be checked without one: the image's build command
// is run as the Dockerfile writes it and gives a static binary that works;
// the unit and the manifest name a command, probes, ports and a
// configuration that the binary accepts.
package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/securechat/securechat/cli"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dockerfile is the Dockerfile's instructions, continuation lines joined.
func dockerfile(t *testing.T) [][2]string {
	t.Helper()
	var out [][2]string
	var cur strings.Builder
	for _, line := range strings.Split(read(t, "Dockerfile"), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		op, arg, _ := strings.Cut(cur.String(), " ")
		out = append(out, [2]string{strings.ToUpper(op), strings.TrimSpace(arg)})
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	var froms, users []string
	var build, entry, cmd, expose string
	for _, in := range ins {
		switch in[0] {
		case "FROM":
			froms = append(froms, in[1])
		case "USER":
			users = append(users, in[1])
		case "RUN":
			if strings.Contains(in[1], "go build") {
				build = in[1]
			}
		case "ENTRYPOINT":
			entry = in[1]
		case "CMD":
			cmd = in[1]
		case "EXPOSE":
			expose = in[1]
		}
	}
	if len(froms) != 2 || !strings.Contains(froms[0], " AS build") {
		t.Errorf("want a build stage and a final stage: FROM %v", froms)
	}
	// The builder's Go is the one go.mod asks for.
	gomod := read(t, "../go.mod")
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if goLine == nil || !strings.HasPrefix(froms[0], "golang:"+goLine[1]) {
		t.Errorf("builder %q does not match go.mod's go %v", froms[0], goLine)
	}
	if len(users) == 0 || users[len(users)-1] == "0" || strings.HasPrefix(users[len(users)-1], "root") {
		t.Errorf("the final stage must run as a non-root user: USER %v", users)
	}
	if entry != `["/usr/local/bin/securechat"]` || !strings.Contains(cmd, `"run"`) {
		t.Errorf("ENTRYPOINT %s CMD %s", entry, cmd)
	}
	if !strings.Contains(cmd, "0.0.0.0:"+expose) {
		t.Errorf("EXPOSE %s is not the port the metrics listen on (CMD %s)", expose, cmd)
	}
	if !strings.Contains(build, "CGO_ENABLED=1") || !strings.Contains(build, "-extldflags '-static'") {
		t.Errorf("the build is not a static cgo build: %s", build)
	}
}

// TestDockerBuildCommand runs the Dockerfile's go build as it is written
// (the Docker engine is the only part missing) and checks that the binary
// is static and runs.
func TestDockerBuildCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("a full static build: not in -short")
	}
	var build string
	for _, in := range dockerfile(t) {
		if in[0] == "RUN" && strings.Contains(in[1], "go build") {
			build = in[1]
		}
	}
	build, _, _ = strings.Cut(build, " && ") // the smoke test after it is ours too, below
	out := filepath.Join(t.TempDir(), "securechat")
	build = strings.ReplaceAll(build, "/out/securechat", out)
	build = strings.ReplaceAll(build, "${VERSION}", "test")
	c := exec.Command("sh", "-c", build)
	c.Dir = ".."
	c.Env = append(os.Environ(), "GOFLAGS=")
	if b, err := c.CombinedOutput(); err != nil {
		if bytes.Contains(b, []byte("cannot find -lc")) || bytes.Contains(b, []byte("cannot find -lpthread")) {
			t.Skipf("no static C library here (libc6-dev's libc.a): %s", b)
		}
		t.Fatalf("%s\n%s", build, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader: it would not run on distroless/static")
		}
	}
	f.Close()
	if b, err := exec.Command(out, "--help").CombinedOutput(); err != nil || !strings.Contains(string(b), "regex") {
		t.Errorf("the static binary does not run: %v\n%s", err, b)
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := read(t, "securechat.service")
	sections := map[string]map[string]string{}
	var cur string
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			cur = strings.Trim(line, "[]")
			sections[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == "" {
				t.Fatalf("not a unit line: %q", line)
			}
			sections[cur][k] = v
		}
	}
	svc := sections["Service"]
	if !strings.HasPrefix(svc["ExecStart"], "/usr/local/bin/securechat run") {
		t.Errorf("ExecStart = %q", svc["ExecStart"])
	}
	for k, want := range map[string]string{"StateDirectory": "securechat", "DynamicUser": "yes", "KillSignal": "SIGTERM",
		"Restart": "on-failure", "RestartPreventExitStatus": "2", "NoNewPrivileges": "yes"} {
		if svc[k] != want {
			t.Errorf("%s = %q, want %q", k, svc[k], want)
		}
	}
	if sections["Install"]["WantedBy"] != "multi-user.target" {
		t.Errorf("WantedBy = %q", sections["Install"]["WantedBy"])
	}
	// The flags it passes exist.
	args := strings.Fields(svc["ExecStart"])[1:]
	if code := cli.Run(context.Background(), append(args, "--help"), cli.Deps{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}); code != 0 {
		t.Errorf("securechat %v --help exits %d", args, code)
	}
	// systemd's own check, where systemd-analyze is installed: the unit
	// as written, but for the binary, which is not installed here.
	if path, err := exec.LookPath("systemd-analyze"); err == nil {
		copy := filepath.Join(t.TempDir(), "securechat.service")
		if err := os.WriteFile(copy, []byte(strings.ReplaceAll(unit, "/usr/local/bin/securechat", "/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(path, "verify", copy).CombinedOutput(); err != nil || len(bytes.TrimSpace(b)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, b)
		}
	} else {
		t.Log("systemd-analyze is not installed: the unit's syntax was checked here only")
	}
}

func TestKubernetesManifest(t *testing.T) {
	dec := yaml.NewDecoder(strings.NewReader(read(t, "kubernetes.yaml")))
	docs := map[string]map[string]any{}
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			break
		}
		docs[d["kind"].(string)] = d
	}
	get := func(v any, path ...any) any {
		for _, p := range path {
			switch k := p.(type) {
			case string:
				m, _ := v.(map[string]any)
				v = m[k]
			case int:
				l, _ := v.([]any)
				if k >= len(l) {
					return nil
				}
				v = l[k]
			}
		}
		return v
	}
	dep := docs["Deployment"]
	if dep == nil || docs["ConfigMap"] == nil || docs["PodDisruptionBudget"] == nil {
		t.Fatalf("kinds: %v", docs)
	}
	if r := get(dep, "spec", "replicas"); r != 2 {
		t.Errorf("replicas = %v, want 2", r)
	}
	if get(dep, "spec", "strategy", "rollingUpdate", "maxUnavailable") != 0 {
		t.Error("a rolling update may stop a replica before its successor is ready")
	}
	c := get(dep, "spec", "template", "spec", "containers", 0)
	if get(c, "readinessProbe", "httpGet", "path") != "/readyz" || get(c, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Errorf("probes: %v %v", get(c, "readinessProbe"), get(c, "livenessProbe"))
	}
	if get(c, "ports", 0, "containerPort") != 9090 || get(c, "envFrom", 0, "secretRef", "name") != "securechat" {
		t.Errorf("ports/secret: %v %v", get(c, "ports"), get(c, "envFrom"))
	}
	if get(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true || get(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("the pod must run as non-root with a read-only root")
	}
	// The configuration it mounts is one the binary accepts, and listens
	// where the probes look.
	toml := get(docs["ConfigMap"], "data", "securechat.toml").(string)
	if !strings.Contains(toml, `addr = "0.0.0.0:9090"`) {
		t.Errorf("the metrics do not listen on the probes' port:\n%s", toml)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "securechat.toml")
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	env := map[string]string{"SECURECHAT_CONFIG": cfg}
	code := cli.Run(context.Background(), []string{"--db", filepath.Join(dir, "x.db"), "regex", "add", "tok_[a-z]{12}"},
		cli.Deps{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	if code != 0 {
		t.Errorf("the ConfigMap's configuration is refused: %d %s", code, errb.String())
	}
}
