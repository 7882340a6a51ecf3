package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
)

// RESERVEKIT_BOOTSTRAP=0: an empty database stays empty and nothing is
// printed.
func TestBootstrapOff(t *testing.T) {
	bin := shutdownBuild(t)
	s := shutdownStartOn(t, bin, t.TempDir()+"/x.db", "(none)", "RESERVEKIT_BOOTSTRAP=0")
	s.signal(syscall.SIGTERM)
	if code, _ := s.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := s.stdout.String(); out != "" {
		t.Fatalf("stdout %q, want nothing", out)
	}
	if _, services := s.apiLogCount(); services != 0 {
		t.Fatalf("%d services", services)
	}
	database, err := db.Open(context.Background(), "sqlite:"+s.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close()
	if n, err := database.CountAccounts(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d accounts (%v), want none", n, err)
	}
}
