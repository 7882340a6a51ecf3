package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

type report struct {
	opts                  options
	machine               string
	dbDescription         string
	seedTime              time.Duration
	results               []*result
	rssAfterSeed, rssPeak string
	loadBefore, loadAfter string
	counterErr            error
	goVersion             string
	gomaxprocs            int
}

// printReport writes the Markdown table and the conditions of the run.
func printReport(w io.Writer, r report) {
	o := r.opts
	fmt.Fprintf(w, "\n`go run ./server/loadtest %s`\n\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(w, "%s, %d services × %d slots, %d seeded bookings; concurrency %d, %s per operation after %s of warm-up.\n\n",
		r.dbDescription, o.services, slotsPerService, o.bookings, o.concurrency, o.duration, o.warmup)
	fmt.Fprintln(w, "| operation | requests | errors | req/s | p50 | p99 | SQL statements / op | CPU / op |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, res := range r.results {
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %s | %s | %s | %s |\n",
			res.sc.title, res.requests, res.errors, res.throughput(),
			ms(res.percentile(0.50)), ms(res.percentile(0.99)), stmtsCell(res), ms(res.cpuPerOp()))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Peak RSS (VmHWM) %s (%s after seeding). SQL statements / op: every statement the server ran while the operation was measured (BEGIN/COMMIT included) ÷ requests; in brackets the background jobs' share (API log batches, usage flushes). CPU / op: user + system CPU time of the whole process (server and load generator; not Postgres) ÷ requests.\n\n",
		r.rssPeak, r.rssAfterSeed)
	fmt.Fprintf(w, "Machine: %s; %s, GOMAXPROCS %d. Load average %s before, %s after (other processes may share the CPUs; the load generator runs in the same process as the server). Seeding took %s.\n",
		r.machine, r.goVersion, r.gomaxprocs, r.loadBefore, r.loadAfter, r.seedTime.Round(time.Millisecond))
	for _, res := range r.results {
		if res.firstError != "" {
			fmt.Fprintf(w, "\nFirst error of %s: %s\n", res.sc.name, res.firstError)
		}
	}
	if r.counterErr != nil {
		fmt.Fprintf(w, "\nCONSISTENCY CHECK FAILED: %v\n", r.counterErr)
	} else {
		fmt.Fprintln(w, "\nOccurrence counters match the bookings after the run.")
	}
}

// stmtsCell is the statements per operation, with the background share.
func stmtsCell(res *result) string {
	bg := res.perOp(res.stmts - res.stmtsReq)
	if bg < 0.005 {
		return fmt.Sprintf("%.2f", res.perOp(res.stmts))
	}
	return fmt.Sprintf("%.2f (%.2f)", res.perOp(res.stmts), bg)
}

// describeMachine names the CPU model and count.
func describeMachine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		var kb int64
		if _, err := fmt.Sscanf(v, "%d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("nproc %d, %s%s, %s/%s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH)
}

// peakRSS is the process's peak resident set size (VmHWM).
func peakRSS() string {
	v := procField("/proc/self/status", "VmHWM")
	var kb int64
	if _, err := fmt.Sscanf(v, "%d kB", &kb); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
}

// procField reads "Name: value" from a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage is the 1-minute load average.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}
