package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
)

// shutdownKeyRE finds the key the first start prints.
var shutdownKeyRE = regexp.MustCompile(`sk_rsv_[0-9A-Za-z]{38}`)

// shutdownBuffer is an output of the process, written by exec's copier and
// read by the test.
type shutdownBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *shutdownBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *shutdownBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// shutdownServer is the server binary running as a process of its own.
type shutdownServer struct {
	t      *testing.T
	dbPath string
	base   string
	cmd    *exec.Cmd
	stdout shutdownBuffer
	stderr shutdownBuffer
	exited chan struct{}
	err    error // of cmd.Wait, once exited is closed
	key    string
}

// shutdownBuild builds the server (the package in the working directory).
func shutdownBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "reservekit")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// shutdownFreePort returns a TCP port nothing listens on right now.
func shutdownFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// shutdownStart runs `reservekit` (serve) on a fresh SQLite database with a
// key bootstrapped, and waits until /healthz answers.
func shutdownStart(t *testing.T, bin string) *shutdownServer {
	t.Helper()
	return shutdownStartOn(t, bin, filepath.Join(t.TempDir(), "x.db"), "")
}

// shutdownStartOn runs `reservekit` (serve) on the SQLite database at
// dbPath, with extra environment variables env. key is the key of the
// database's default account, or empty on a fresh database, whose first
// start prints it.
func shutdownStartOn(t *testing.T, bin, dbPath, key string, env ...string) *shutdownServer {
	t.Helper()
	port := shutdownFreePort(t)
	s := &shutdownServer{t: t, dbPath: dbPath, base: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{}), key: key}
	s.cmd = exec.Command(bin)
	// The environment of the test, minus what configures the server.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "DATABASE_URL", name == "PORT", name == "REDIS_URL", name == "METRICS_ADDR", name == "LOG_FORMAT",
			name == "SHUTDOWN_TIMEOUT", name == "RESERVEKIT_BOOTSTRAP", name == "TRUST_PROXY_HEADERS", name == "PLAYGROUND",
			strings.HasPrefix(name, "GRAPHQL_"), strings.HasPrefix(name, "WEBHOOK_"):
			continue
		}
		s.cmd.Env = append(s.cmd.Env, kv)
	}
	s.cmd.Env = append(s.cmd.Env, "DATABASE_URL=sqlite:"+s.dbPath, "PORT="+strconv.Itoa(port), "LOG_FORMAT=json",
		"SHUTDOWN_TIMEOUT=10s", "RESERVEKIT_BOOTSTRAP=1",
		// Not the default key file, which would land in the source tree.
		"WEBHOOK_SECRET_KEY="+strings.Repeat("ab", 32))
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if k := shutdownKeyRE.FindString(s.stderr.String()); k != "" {
			t.Errorf("a secret key (%s…) appears in the server's logs on stderr", k[:len("sk_rsv_")+4])
		}
		if t.Failed() {
			t.Logf("server stdout:\n%s\nserver stderr:\n%s", shutdownRedact(s.stdout.String()), shutdownRedact(s.stderr.String()))
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for s.key == "" || !s.healthy() {
		select {
		case <-s.exited:
			t.Fatalf("the server exited before it was ready: %v\nstderr:\n%s", s.err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server was not ready within a minute (key printed: %v)", s.key != "")
		}
		if s.key == "" {
			s.key = shutdownKeyRE.FindString(s.stdout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func shutdownRedact(s string) string { return shutdownKeyRE.ReplaceAllString(s, "sk_rsv_…") }

func (s *shutdownServer) healthy() bool {
	res, err := http.Get(s.base + "/healthz")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode == http.StatusOK
}

// signal sends sig to the process.
func (s *shutdownServer) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits for the process to exit (at most within) and returns its
// exit code and how long it took.
func (s *shutdownServer) waitExit(within time.Duration) (int, time.Duration) {
	s.t.Helper()
	start := time.Now()
	select {
	case <-s.exited:
	case <-time.After(within):
		s.t.Fatalf("the server had not exited %v after the signal", within)
	}
	code := 0
	var exitErr *exec.ExitError
	if errors.As(s.err, &exitErr) {
		code = exitErr.ExitCode()
	} else if s.err != nil {
		s.t.Fatalf("wait: %v", s.err)
	}
	return code, time.Since(start)
}

// apiLogCount opens the database after the process exited and counts the
// API log rows.
func (s *shutdownServer) apiLogCount() (logs, services int) {
	s.t.Helper()
	ctx := context.Background()
	database, err := db.Open(ctx, "sqlite:"+s.dbPath)
	if err != nil {
		s.t.Fatal(err)
	}
	defer database.Close()
	l, err := database.NewSelect().Table("api_logs").Count(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	n, err := database.NewSelect().Table("services").Count(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	return int(l), int(n)
}

// logLines checks that every line of stderr is a JSON object (LOG_FORMAT=
// json) and returns the "request" lines for path.
func (s *shutdownServer) logLines(path string) []map[string]any {
	s.t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			s.t.Errorf("log line is not JSON: %q", shutdownRedact(sc.Text()))
			continue
		}
		if line["msg"] == "request" && line["path"] == path {
			out = append(out, line)
		}
	}
	return out
}

// shutdownOutcome is what one request of the burst got.
type shutdownOutcome struct {
	kind   string // "viewer" or "createService"
	status int    // 0 when refused at the connection level
	err    error
	body   []byte
	reqID  string
	at     time.Time // when it completed
}

// post sends one operation of the burst.
func (s *shutdownServer) post(client *http.Client, kind string, n int) shutdownOutcome {
	query := `{ viewer { account { name } } }`
	if kind == "createService" {
		query = fmt.Sprintf(`mutation { createService(input: {name: "svc %d", timezone: "UTC"}) { id name } }`, n)
	}
	body, _ := json.Marshal(map[string]any{"query": query})
	req, err := http.NewRequest(http.MethodPost, s.base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return shutdownOutcome{kind: kind, err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.key)
	res, err := client.Do(req)
	if err != nil {
		return shutdownOutcome{kind: kind, err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return shutdownOutcome{kind: kind, status: res.StatusCode, err: err, body: raw, reqID: res.Header.Get("X-Request-Id"), at: time.Now()}
}

// check reports whether a request that got a response got a complete 200
// with the data asked for.
func (o shutdownOutcome) check(n int) error {
	if o.err != nil {
		return fmt.Errorf("HTTP %d but the body broke off: %v (%q)", o.status, o.err, o.body)
	}
	if o.status != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", o.status, o.body)
	}
	var v struct {
		Data struct {
			Viewer        *struct{ Account struct{ Name string } }
			CreateService *struct{ ID, Name string }
		}
		Errors []json.RawMessage
	}
	if err := json.Unmarshal(o.body, &v); err != nil {
		return fmt.Errorf("body is not complete JSON: %v: %q", err, o.body)
	}
	switch {
	case len(v.Errors) > 0:
		return fmt.Errorf("errors: %s", o.body)
	case o.kind == "viewer" && (v.Data.Viewer == nil || v.Data.Viewer.Account.Name != "default"):
		return fmt.Errorf("viewer: %s", o.body)
	case o.kind == "createService" && (v.Data.CreateService == nil || v.Data.CreateService.ID == "" || v.Data.CreateService.Name != fmt.Sprintf("svc %d", n)):
		return fmt.Errorf("createService %d: %s", n, o.body)
	}
	return nil
}

func TestGracefulShutdownUnderLoad(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	t.Parallel()
	s := shutdownStart(t, shutdownBuild(t))

	// The bootstrapped account has the growth plan (burst 50): lift its
	// limits so the burst is not refused with 429. No authenticated request
	// has been made yet, so the server has not cached the old limits.
	var out, errOut bytes.Buffer
	if code := run([]string{"accounts", "update", "default", "--rate", "100000", "--burst", "100000"}, &out, &errOut,
		func(k string) string {
			if k == "DATABASE_URL" {
				return "sqlite:" + s.dbPath
			}
			return ""
		}); code != 0 {
		t.Fatalf("accounts update: exit %d: %s", code, errOut.String())
	}

	const workers, perWorker, signalAfter = 20, 10, 70
	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true},
	}
	defer client.CloseIdleConnections()
	var done atomic.Int64
	signalled := make(chan time.Time, 1)
	var sigOnce sync.Once
	outcomes := make([][]shutdownOutcome, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				n := w*perWorker + i
				kind := "viewer"
				if n%3 == 0 {
					kind = "createService"
				}
				outcomes[w] = append(outcomes[w], s.post(client, kind, n))
				if done.Add(1) == signalAfter {
					sigOnce.Do(func() {
						signalled <- time.Now()
						_ = s.cmd.Process.Signal(syscall.SIGTERM)
					})
				}
			}
		})
	}
	wg.Wait()
	var sentAt time.Time
	select {
	case sentAt = <-signalled:
	default:
		t.Fatal("SIGTERM was never sent")
	}
	code, _ := s.waitExit(40 * time.Second)
	exitedAfter := time.Since(sentAt)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if exitedAfter > 10*time.Second+15*time.Second {
		t.Errorf("the server took %v to exit with SHUTDOWN_TIMEOUT=10s", exitedAfter)
	}

	responses, afterSignal, refused, servicesCreated := 0, 0, 0, 0
	refusals := map[string]int{}
	for w, list := range outcomes {
		for i, o := range list {
			if o.status == 0 {
				refused++
				refusals[shutdownErrKind(o.err)]++
				continue
			}
			responses++
			if o.at.After(sentAt) {
				afterSignal++ // in flight when SIGTERM came
			}
			if err := o.check(w*perWorker + i); err != nil {
				t.Errorf("request %d (%s): %v", w*perWorker+i, o.kind, err)
			} else if o.kind == "createService" {
				servicesCreated++
			}
		}
	}
	logs, services := s.apiLogCount()
	t.Logf("%d requests: %d answered (%d createService; %d completed after SIGTERM was sent), %d refused at the connection level %v; "+
		"exit 0 %v after SIGTERM; %d api_logs rows", workers*perWorker, responses, servicesCreated, afterSignal, refused, refusals,
		exitedAfter.Round(time.Millisecond), logs)
	if responses < signalAfter {
		t.Fatalf("only %d responses, but SIGTERM was sent after %d", responses, signalAfter)
	}
	if refused == 0 {
		t.Errorf("all %d requests were answered: the server kept accepting after SIGTERM", responses)
	}
	// Every answered request was logged, and the log was flushed on shutdown.
	if logs != responses {
		t.Errorf("api_logs holds %d rows, want %d (one per authenticated request answered)", logs, responses)
	}
	// Nothing ran without an answer, nothing answered was lost.
	if services != servicesCreated {
		t.Errorf("%d services in the database, %d createService answered", services, servicesCreated)
	}
	// One JSON request line per answered /graphql request, with the id the
	// client saw.
	lines := s.logLines("/graphql")
	if len(lines) != responses {
		t.Errorf("%d request log lines for /graphql, want %d", len(lines), responses)
	}
	ids := map[string]bool{}
	for _, l := range lines {
		id, _ := l["request_id"].(string)
		ids[id] = true
		if _, ok := l["duration_ms"].(float64); !ok || l["method"] != "POST" || l["status"] != float64(200) {
			t.Errorf("request log line %v", l)
		}
	}
	for _, list := range outcomes {
		for _, o := range list {
			if o.status != 0 && !ids[o.reqID] {
				t.Errorf("no request log line for X-Request-Id %q", o.reqID)
			}
		}
	}
	if shutdownKeyRE.MatchString(s.stderr.String()) {
		t.Error("the server logged its key")
	}
}

// shutdownErrKind classifies a connection-level failure for the report.
func shutdownErrKind(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case strings.Contains(err.Error(), "server closed idle connection"):
		return "closed idle connection"
	default:
		return err.Error()
	}
}

func TestShutdownOnSIGINT(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT for another process on Windows")
	}
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	t.Parallel()
	s := shutdownStart(t, shutdownBuild(t))
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	for i := range 3 {
		if err := s.post(client, "viewer", i).check(i); err != nil {
			t.Fatal(err)
		}
	}
	s.signal(syscall.SIGINT)
	code, took := s.waitExit(40 * time.Second)
	if code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0", code)
	}
	logs, _ := s.apiLogCount()
	t.Logf("exit 0 %v after SIGINT; %d api_logs rows", took.Round(time.Millisecond), logs)
	if logs != 3 {
		t.Fatalf("api_logs holds %d rows after 3 requests", logs)
	}
	if res, err := http.Get(s.base + "/healthz"); err == nil {
		res.Body.Close()
		t.Fatal("something still answers on the port after exit")
	}
}
