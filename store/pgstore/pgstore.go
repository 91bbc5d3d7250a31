// Package pgstore keeps directories and path infos in PostgreSQL, so any
// number of daemons can share them: the DirectoryService and
// PathInfoService of postgres:// URLs. A closure walk and a store-path
// lookup are one query each; puts are transactions that check the
// closure invariants (a directory's children, a path's references are
// stored) against what is committed, so no reader ever sees a directory
// or path whose closure is missing. Daemons share one schema, migrated
// under an advisory lock by whichever starts first.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tvix-go/tvix/internal/retry"
)

// DB is a pool of connections to one database schema, shared by the
// directory and path-info services opened on it.
type DB struct {
	pool   *pgxpool.Pool
	policy retry.Policy
}

// Open connects to a postgres:// URL and brings its schema up to date.
// Besides pgx's own parameters (pool_max_conns and the like) the URL may
// say schema=NAME (created if missing; default public) and retry-for=DUR
// (how long an operation keeps retrying while the server cannot be
// reached; default 60 s).
func Open(ctx context.Context, raw string) (*DB, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	schema, retryFor := q.Get("schema"), 60*time.Second
	if v := q.Get("retry-for"); v != "" {
		if retryFor, err = time.ParseDuration(v); err != nil {
			return nil, fmt.Errorf("retry-for=%q: %w", v, err)
		}
	}
	q.Del("schema")
	q.Del("retry-for")
	u.RawQuery = q.Encode()
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", u.Redacted(), err)
	}
	if schema != "" {
		if !validIdentifier(schema) {
			return nil, fmt.Errorf("schema=%q: want lowercase letters, digits and _", schema)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = schema
	}
	db := &DB{policy: retry.Policy{Budget: retryFor, First: 50 * time.Millisecond, Max: 2 * time.Second, Retryable: retryable}}
	err = db.retry(ctx, "connect", func(ctx context.Context) error {
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return err
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return err
		}
		db.pool = pool
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	if err := db.migrate(ctx, schema); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("migrate %s: %w", u.Redacted(), err)
	}
	return db, nil
}

func validIdentifier(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return s != "" && len(s) < 64 && !(s[0] >= '0' && s[0] <= '9')
}

// Close closes the pool.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

func (db *DB) InProcess() bool { return false }

// handle is what a service holds of its DB.
type handle struct {
	db *DB
	// closeDB: the service owns the pool (opened for it alone).
	closeDB bool
}

func (h handle) Close() error {
	if h.closeDB {
		return h.db.Close()
	}
	return nil
}

func (h handle) InProcess() bool { return false }

// migrations are applied in order, each once, recorded in
// tvix_migrations. Never edit one that shipped; append another.
var migrations = []string{
	// 1: directories by digest with their children's digests beside the
	// encoding, so a closure is one recursive query; path infos by store
	// path digest with their references, for the invariant's check; the
	// NAR files nar-bridge was handed.
	`CREATE TABLE directories (
		digest   bytea PRIMARY KEY CHECK (length(digest) = 32),
		children bytea[] NOT NULL,
		data     bytea NOT NULL
	);
	CREATE TABLE path_infos (
		digest bytea PRIMARY KEY CHECK (length(digest) = 20),
		refs   bytea[] NOT NULL,
		data   bytea NOT NULL
	);
	CREATE TABLE nar_files (
		url  text PRIMARY KEY,
		path bytea NOT NULL CHECK (length(path) = 20)
	);`,
	// 2: when each directory was last put or deduplicated against, so a
	// collector in any daemon spares what another one is uploading
	// (castore.Collectable's epoch); rows from before count as new.
	`ALTER TABLE directories ADD COLUMN touched timestamptz NOT NULL DEFAULT now();
	CREATE INDEX nar_files_path ON nar_files (path);`,
	// 3: path infos by the paths they refer to, so a delete's check for
	// what still refers into it and a query for referrers are index
	// lookups, not scans of every path.
	`CREATE INDEX path_infos_refs ON path_infos USING gin (refs);`,
}

// migrationLock is the advisory lock daemons starting together take, so
// one migrates and the others wait and see it done.
const migrationLock = 0x7475697800000001

func (db *DB) migrate(ctx context.Context, schema string) error {
	return db.tx(ctx, "migrate", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		if schema != "" {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tvix_migrations (
			version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM tvix_migrations`).Scan(&have); err != nil {
			return err
		}
		if have > len(migrations) {
			return fmt.Errorf("the database is at schema version %d; this tvix knows only up to %d", have, len(migrations))
		}
		for v := have + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO tvix_migrations (version) VALUES ($1)`, v); err != nil {
				return err
			}
			slog.Info("pgstore: migrated", "version", v)
		}
		return nil
	})
}

// tx runs fn in a transaction, retried as a whole (see retry): every
// transaction here is idempotent.
func (db *DB) tx(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	return db.retry(ctx, what, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, db.pool, fn)
	})
}

// retry runs op again while the server cannot be reached, is shutting
// down or starting, or a serialization failure asks for it (see
// retryable), for up to the URL's retry-for.
func (db *DB) retry(ctx context.Context, what string, op func(context.Context) error) error {
	return db.policy.Do(ctx, what, op)
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exceptions
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, crash, starting
			pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
			return true
		}
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || pgconn.SafeToRetry(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset")
}
