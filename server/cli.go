package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/ratelimit"
	"github.com/reservekit/reservekit/server/redact"
	"github.com/reservekit/reservekit/server/secretbox"
)

const usage = `ReserveKit: a self-hostable scheduling API served as GraphQL.

Usage:
  server [serve]                 serve the API on PORT (default 8080)
  server migrate                 apply database migrations and exit
  server accounts create NAME [--plan starter|developer|growth] [--rate N --burst N] [--monthly-quota N]
  server accounts update NAME [--plan P] [--rate N --burst N] [--monthly-quota N]
  server keys create --account NAME [--name LABEL] [--domain HOST] [--plan P]
                     [--scopes a,b] [--allowed-cidrs CIDR,…]
                                 print a new key's secret (only the secret, on stdout)
  server keys list --account NAME
  server keys revoke ID

Environment:
  DATABASE_URL   postgres://… or postgresql://… (Postgres), sqlite:PATH or file:PATH
                 (SQLite); default sqlite:reservekit.db
  PORT           listen port (default 8080)
  RESERVEKIT_BOOTSTRAP=0
                 do not create the "default" account and key on an empty database
  LOG_FORMAT=json
                 JSON logs on stderr (default text)
  TRUST_PROXY_HEADERS
                 comma-separated proxy networks whose X-Forwarded-For names the client
  REDIS_URL      redis://… shares rate-limit counters between instances
  METRICS_ADDR   serve /metrics on this address instead of the API's port
  SHUTDOWN_TIMEOUT
                 how long in-flight requests may finish on SIGTERM (default 20s)
  SHUTDOWN_DRAIN_DELAY
                 how long to keep serving after SIGTERM with /readyz at 503 (default 0s)
  GRAPHQL_INTROSPECTION=false, PLAYGROUND=false
                 turn off introspection (and suggestions) or the playground
  GRAPHQL_MAX_COST, GRAPHQL_MAX_DEPTH, GRAPHQL_MAX_ALIASES
                 per-operation limits (default 1000, 10, 30)
  API_LOG_RETENTION
                 how long API logs are kept: days (30d) or a duration (720h); default 30d
  WEBHOOK_SECRET_KEY, WEBHOOK_SECRET_KEY_FILE
                 key sealing webhook signing secrets (64 hex characters or base64),
                 else kept in the file (default reservekit-webhook.key)
  WEBHOOK_ALLOW_PRIVATE=1
                 let webhooks reach loopback and private addresses (development)
`

// cli holds what every command needs.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	log            *slog.Logger
}

// run executes one command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if getenv("LOG_FORMAT") == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	c.log = slog.New(redact.NewHandler(h))
	if err := c.dispatch(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "error:", strings.TrimPrefix(err.Error(), "usage: "))
		return 2
	}
	return 0
}

func (c *cli) dispatch(args []string) error {
	if len(args) == 0 {
		return c.serve(nil)
	}
	// "server --help", "server keys --help" and "server accounts --help"
	// print the usage; "server keys create --help" etc. their own help.
	if isHelp(args[0]) || len(args) == 2 && (args[0] == "keys" || args[0] == "accounts") && isHelp(args[1]) {
		fmt.Fprint(c.stdout, usage)
		return nil
	}
	switch args[0] {
	case "serve":
		return c.serve(args[1:])
	case "migrate":
		return c.migrate(args[1:])
	case "accounts":
		if len(args) > 1 && args[1] == "create" {
			return c.accountsCreate(args[2:])
		}
		if len(args) > 1 && args[1] == "update" {
			return c.accountsUpdate(args[2:])
		}
	case "keys":
		if len(args) > 1 {
			switch args[1] {
			case "create":
				return c.keysCreate(args[2:])
			case "list":
				return c.keysList(args[2:])
			case "revoke":
				return c.keysRevoke(args[2:])
			}
		}
	}
	return fmt.Errorf("unknown command %q (see server --help)", strings.Join(args, " "))
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// parse parses flags that may appear before or after positional arguments.
func (c *cli) parse(fs *flag.FlagSet, args []string, help string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintln(c.stdout, help)
				fs.SetOutput(c.stdout)
				fs.PrintDefaults()
			}
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func (c *cli) open(ctx context.Context) (*db.DB, error) {
	database, err := db.Open(ctx, c.getenv("DATABASE_URL"))
	if err != nil {
		return nil, err
	}
	if err := database.Migrate(ctx); err != nil {
		database.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return database, nil
}

func (c *cli) serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if pos, err := c.parse(fs, args, "Usage: server serve  (PORT, DATABASE_URL from the environment)"); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", pos[0])
	}
	port := c.getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("PORT must be a number, got %q", port)
	}
	retention, err := parseRetention(c.getenv("API_LOG_RETENTION"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	database, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer database.Close()
	c.log.Info("database ready", "database", database.Description)
	if c.getenv("RESERVEKIT_BOOTSTRAP") != "0" {
		if err := app.Bootstrap(ctx, database, c.stdout, "http://localhost:"+port); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	proxies, err := auth.ParseCIDRs(c.getenv("TRUST_PROXY_HEADERS"))
	if err != nil {
		return fmt.Errorf("TRUST_PROXY_HEADERS: %w", err)
	}
	cfg := app.Config{Log: c.log, TrustedProxies: proxies, LogRetention: retention}
	if err := c.graphQLLimits(&cfg); err != nil {
		return err
	}
	if raw := c.getenv("REDIS_URL"); raw != "" {
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.ContextTimeoutEnabled = true // honour the limiter's 100 ms per-call bound
		client := redis.NewClient(opts)
		defer client.Close()
		counters := ratelimit.NewRedisCounterSet(client, c.log)
		cfg.RateCounters, cfg.RedisFallbacks = counters.New, counters.Fallbacks
		c.log.Info("rate-limit counters in redis", "addr", opts.Addr)
	}
	cfg.NoIntrospection = c.getenv("GRAPHQL_INTROSPECTION") == "false"
	cfg.NoPlayground = c.getenv("PLAYGROUND") == "false"
	if raw := c.getenv("SHUTDOWN_TIMEOUT"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d <= 0 {
			return fmt.Errorf("SHUTDOWN_TIMEOUT must be a duration such as 20s, got %q", raw)
		}
		cfg.ShutdownTimeout = d
	}
	if raw := c.getenv("SHUTDOWN_DRAIN_DELAY"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 {
			return fmt.Errorf("SHUTDOWN_DRAIN_DELAY must be a duration such as 5s, got %q", raw)
		}
		cfg.DrainDelay = d
	}
	keyFile := c.getenv("WEBHOOK_SECRET_KEY_FILE")
	if keyFile == "" {
		keyFile = "reservekit-webhook.key"
	}
	box, source, err := secretbox.Load(c.getenv("WEBHOOK_SECRET_KEY"), keyFile)
	if err != nil {
		return fmt.Errorf("WEBHOOK_SECRET_KEY: %w", err)
	}
	cfg.Secrets = box
	c.log.Info("webhook signing secrets sealed", "key", source)
	if database.IsPostgres() && c.getenv("WEBHOOK_SECRET_KEY") == "" {
		c.log.Warn("WEBHOOK_SECRET_KEY is not set: every instance sharing this database needs the same key to sign webhooks")
	}
	cfg.WebhookAllowPrivate = c.getenv("WEBHOOK_ALLOW_PRIVATE") == "1"
	metricsAddr := c.getenv("METRICS_ADDR")
	cfg.MetricsElsewhere = metricsAddr != ""
	a := app.New(database, cfg)
	if metricsAddr != "" {
		mln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
		msrv := &http.Server{Handler: a.Metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
		c.log.Info("metrics", "addr", mln.Addr().String())
	}
	defer a.Close()
	c.log.Info("serving", "addr", ln.Addr().String(), "playground", "http://localhost:"+port+"/")
	return a.Serve(ctx, ln)
}

// graphQLLimits reads GRAPHQL_MAX_COST, GRAPHQL_MAX_DEPTH and
// GRAPHQL_MAX_ALIASES.
func (c *cli) graphQLLimits(cfg *app.Config) error {
	for name, dst := range map[string]*int{
		"GRAPHQL_MAX_COST": &cfg.GraphQL.MaxCost, "GRAPHQL_MAX_DEPTH": &cfg.GraphQL.MaxDepth,
		"GRAPHQL_MAX_ALIASES": &cfg.GraphQL.MaxAliases,
	} {
		if raw := c.getenv(name); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 {
				return fmt.Errorf("%s must be a positive integer, got %q", name, raw)
			}
			*dst = n
		}
	}
	return nil
}

func (c *cli) migrate(args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if pos, err := c.parse(fs, args, "Usage: server migrate  (DATABASE_URL from the environment)"); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("migrate takes no arguments, got %q", pos[0])
	}
	database, err := c.open(context.Background())
	if err != nil {
		return err
	}
	defer database.Close()
	c.log.Info("migrations applied", "database", database.Description)
	return nil
}

// accountFlags declares the flags shared by accounts create and update and
// returns a function that reads the ones given on the command line.
func accountFlags(fs *flag.FlagSet, defaultPlan string) func() (*db.Plan, db.AccountLimits) {
	plan := fs.String("plan", defaultPlan, "plan: starter, developer or growth")
	rate := fs.Int("rate", 0, "requests per second (overrides the plan; needs --burst)")
	burst := fs.Int("burst", 0, "burst size (overrides the plan; needs --rate)")
	quota := fs.Int64("monthly-quota", 0, "requests per calendar month (overrides the plan)")
	return func() (*db.Plan, db.AccountLimits) {
		var p *db.Plan
		var limits db.AccountLimits
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "plan":
				v := db.Plan(*plan)
				p = &v
			case "rate":
				limits.Rate = rate
			case "burst":
				limits.Burst = burst
			case "monthly-quota":
				limits.MonthlyQuota = quota
			}
		})
		if p == nil && defaultPlan != "" {
			v := db.Plan(defaultPlan)
			p = &v
		}
		return p, limits
	}
}

func (c *cli) accountsCreate(args []string) error {
	fs := flag.NewFlagSet("accounts create", flag.ContinueOnError)
	given := accountFlags(fs, "starter")
	pos, err := c.parse(fs, args, "Usage: server accounts create NAME [--plan P] [--rate N --burst N] [--monthly-quota N]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("accounts create takes exactly one NAME")
	}
	plan, limits := given()
	database, err := c.open(context.Background())
	if err != nil {
		return err
	}
	defer database.Close()
	a, err := database.CreateAccount(context.Background(), pos[0], *plan, limits)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "account %q created (id %d, plan %s)\n", a.Name, a.ID, a.Plan)
	return nil
}

func (c *cli) accountsUpdate(args []string) error {
	fs := flag.NewFlagSet("accounts update", flag.ContinueOnError)
	given := accountFlags(fs, "")
	pos, err := c.parse(fs, args, "Usage: server accounts update NAME [--plan P] [--rate N --burst N] [--monthly-quota N]")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("accounts update takes exactly one NAME")
	}
	plan, limits := given()
	database, err := c.open(context.Background())
	if err != nil {
		return err
	}
	defer database.Close()
	a, err := database.UpdateAccount(context.Background(), pos[0], plan, limits)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "account %q updated (plan %s)\n", a.Name, a.Plan)
	return nil
}

func (c *cli) keysCreate(args []string) error {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	account := fs.String("account", "", "account name (created if missing)")
	name := fs.String("name", "", "label of the key")
	domain := fs.String("domain", "", "restrict the key to this host (e.g. app.example.com or *.example.com)")
	plan := fs.String("plan", "starter", "plan of the account if it is created")
	scopes := fs.String("scopes", "", "comma-separated scopes (default: full access): "+strings.Join(auth.Scopes, ","))
	cidrs := fs.String("allowed-cidrs", "", "comma-separated networks the key may be used from, e.g. 203.0.113.0/24")
	pos, err := c.parse(fs, args, "Usage: server keys create --account NAME [--name LABEL] [--domain HOST] [--plan P]")
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	if *account == "" {
		return errors.New("--account is required")
	}
	if !db.Plan(*plan).Valid() {
		return errors.New("--plan must be one of starter, developer, growth")
	}
	planSet := false
	fs.Visit(func(f *flag.Flag) { planSet = planSet || f.Name == "plan" })
	ctx := context.Background()
	database, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer database.Close()
	a, err := database.AccountByName(ctx, *account)
	switch {
	case db.ErrorCode(err) == db.CodeAccountNotFound:
		a, err = database.CreateAccount(ctx, *account, db.Plan(*plan), db.AccountLimits{})
	case err == nil && planSet && a.Plan != db.Plan(*plan):
		return fmt.Errorf("account %s exists on plan %s; --plan only applies to a new account (change it with: server accounts update %s --plan %s)",
			a.Name, a.Plan, a.Name, *plan)
	}
	if err != nil {
		return err
	}
	spec := auth.KeySpec{Name: *name, Scopes: splitList(*scopes), AllowedCIDRs: splitList(*cidrs)}
	if *domain != "" {
		spec.Domain = domain
	}
	_, secret, err := auth.Issue(ctx, database, a.ID, nil, spec)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, secret)
	return nil
}

func (c *cli) keysList(args []string) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	account := fs.String("account", "", "account name")
	if pos, err := c.parse(fs, args, "Usage: server keys list --account NAME"); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	if *account == "" {
		return errors.New("--account is required")
	}
	ctx := context.Background()
	database, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer database.Close()
	a, err := database.AccountByName(ctx, *account)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tDOMAIN\tCREATED\tLAST USED\tREVOKED")
	page := db.Page{First: 100}
	for {
		keys, err := database.ListAPIKeys(ctx, a.ID, page)
		if err != nil {
			return err
		}
		for i, k := range keys {
			if i == page.First {
				break
			}
			fmt.Fprintf(tw, "%d\t%s\t%s…\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, deref(k.Domain),
				k.CreatedAt.UTC().Format(time.RFC3339), stamp(k.LastUsedAt), stamp(k.RevokedAt))
			page.AfterID = k.ID
		}
		if len(keys) <= page.First {
			break
		}
	}
	return tw.Flush()
}

func (c *cli) keysRevoke(args []string) error {
	fs := flag.NewFlagSet("keys revoke", flag.ContinueOnError)
	pos, err := c.parse(fs, args, "Usage: server keys revoke ID")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("keys revoke takes exactly one key ID")
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id < 1 {
		return fmt.Errorf("key ID must be a positive integer, got %q", pos[0])
	}
	database, err := c.open(context.Background())
	if err != nil {
		return err
	}
	defer database.Close()
	k, err := database.RevokeAPIKey(context.Background(), 0, id, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "key %d (%s…) revoked at %s\n", k.ID, k.Prefix, k.RevokedAt.UTC().Format(time.RFC3339))
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// parseRetention reads API_LOG_RETENTION: whole days ("30d") or a Go
// duration ("720h"); empty means the default.
func parseRetention(raw string) (time.Duration, error) {
	if raw == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if days, ok := strings.CutSuffix(raw, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	}
	if err != nil || d < time.Hour {
		return 0, fmt.Errorf("API_LOG_RETENTION must be days such as 30d or a duration of at least 1h such as 720h, got %q", raw)
	}
	return d, nil
}
