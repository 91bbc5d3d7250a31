// Package s3blob keeps blobs in an S3 bucket (AWS, MinIO, any
// S3-compatible server) in Tvix's object-store layout: it is the
// blobstore.ObjectStorage of objectstore+s3:// URLs. The layout, the
// chunking writer and the verified readers are blobstore's; this package
// only moves objects, with retries, so that any number of daemons can
// share one bucket.
package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/internal/retry"
)

// Config says where the bucket is and how to reach it.
type Config struct {
	// Endpoint is the server's URL, http:// or https:// (empty: AWS S3).
	Endpoint string
	Region   string
	Bucket   string
	// Prefix is prepended to every key: several stores can share a bucket.
	Prefix string
	// Creds, when nil, come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
	// then the AWS shared credentials file (CredentialsFile, Profile),
	// then MINIO_ROOT_USER/MINIO_ROOT_PASSWORD.
	Creds                    *credentials.Credentials
	CredentialsFile, Profile string
	// RetryFor is how long an operation keeps retrying a server that does
	// not answer or answers 5xx (0: 60 s), so daemons ride out a restart
	// of the server instead of failing every request made meanwhile.
	RetryFor time.Duration
	// Uploads bounds chunk uploads in flight (see
	// blobstore.ObjectStoreOptions).
	Uploads int
	// CacheDir, when set, keeps fetched objects on local disk, up to
	// CacheBytes (0: 1 GiB), least recently used first out.
	CacheDir   string
	CacheBytes int64
	// TouchRefresh (see blobstore.ObjectStoreOptions; 0: the default,
	// negative: every use touches).
	TouchRefresh time.Duration
}

// ParseURL reads an objectstore+s3://BUCKET/PREFIX?endpoint=…&region=…
// URL. Further parameters: credentials-file, profile, retry-for (a Go
// duration), uploads, cache (a directory), cache-size (bytes, or with
// K/M/G suffix) and touch-refresh (a Go duration; 0 touches on every use).
func ParseURL(u *url.URL) (Config, error) {
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if c.Bucket == "" {
		return c, errors.New("no bucket: want objectstore+s3://BUCKET/PREFIX?endpoint=…")
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "credentials-file", "profile", "retry-for", "uploads", "cache", "cache-size", "touch-refresh":
		default:
			return c, fmt.Errorf("unknown parameter %q (known: endpoint, region, credentials-file, profile, retry-for, uploads, cache, cache-size, touch-refresh)", k)
		}
	}
	c.Endpoint, c.Region = q.Get("endpoint"), q.Get("region")
	c.CredentialsFile, c.Profile = q.Get("credentials-file"), q.Get("profile")
	c.CacheDir = q.Get("cache")
	var err error
	if v := q.Get("retry-for"); v != "" {
		if c.RetryFor, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("retry-for=%q: %w", v, err)
		}
	}
	if v := q.Get("touch-refresh"); v != "" {
		if c.TouchRefresh, err = time.ParseDuration(v); err != nil || c.TouchRefresh < 0 {
			return c, fmt.Errorf("touch-refresh=%q: want a duration such as 10m, or 0 to touch on every use", v)
		}
		if c.TouchRefresh == 0 {
			c.TouchRefresh = -1
		}
	}
	if v := q.Get("uploads"); v != "" {
		if c.Uploads, err = strconv.Atoi(v); err != nil || c.Uploads < 1 {
			return c, fmt.Errorf("uploads=%q: want a positive number", v)
		}
	}
	if v := q.Get("cache-size"); v != "" {
		if c.CacheBytes, err = parseSize(v); err != nil {
			return c, fmt.Errorf("cache-size=%q: %w", v, err)
		}
		if c.CacheDir == "" {
			return c, errors.New("cache-size given without cache=DIR")
		}
	}
	return c, nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, errors.New("want a positive size such as 512M")
	}
	return n * mult, nil
}

// Open connects to the bucket, which must exist, and returns the blob
// service over it.
func Open(ctx context.Context, c Config) (*blobstore.Store, error) {
	b, err := NewBucket(ctx, c)
	if err != nil {
		return nil, err
	}
	var storage blobstore.ObjectStorage = b
	if c.CacheDir != "" {
		if storage, err = newDiskCache(b, c.CacheDir, c.CacheBytes); err != nil {
			return nil, err
		}
	}
	return blobstore.NewObjectStore(storage, blobstore.ObjectStoreOptions{Uploads: c.Uploads, TouchRefresh: c.TouchRefresh})
}

// Bucket is a blobstore.ObjectStorage in an S3 bucket, and a
// blobstore.ObjectSweeper.
type Bucket struct {
	client *minio.Client
	bucket string
	prefix string
	policy retry.Policy
}

// maxObject bounds what Get reads: objects are chunks (at most a maximum
// chunk, compressed) and chunk lists, far smaller.
const maxObject = 64 << 20

var _ blobstore.ObjectSweeper = (*Bucket)(nil)

// NewBucket connects to c's bucket and checks that it is there.
func NewBucket(ctx context.Context, c Config) (*Bucket, error) {
	endpoint, secure := "s3.amazonaws.com", true
	lookup := minio.BucketLookupAuto
	if c.Endpoint != "" {
		e, err := url.Parse(c.Endpoint)
		if err != nil || e.Host == "" || (e.Scheme != "http" && e.Scheme != "https") {
			return nil, fmt.Errorf("endpoint %q: want http://HOST:PORT or https://HOST", c.Endpoint)
		}
		endpoint, secure = e.Host, e.Scheme == "https"
		// Self-hosted servers (MinIO) answer buckets as paths, not as
		// host names.
		lookup = minio.BucketLookupPath
	}
	creds := c.Creds
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{Filename: c.CredentialsFile, Profile: c.Profile},
			&credentials.EnvMinio{},
		})
	}
	client, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: secure, Region: c.Region, BucketLookup: lookup,
		Transport: transport()})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", endpoint, err)
	}
	b := &Bucket{client: client, bucket: c.Bucket,
		policy: retry.Policy{Budget: c.RetryFor, First: 100 * time.Millisecond, Max: 2 * time.Second, Retryable: retryable}}
	if b.policy.Budget == 0 {
		b.policy.Budget = 60 * time.Second
	}
	if c.Prefix != "" {
		b.prefix = c.Prefix + "/"
	}
	var ok bool
	err = b.retry(ctx, "look up bucket", func(ctx context.Context) error {
		var err error
		ok, err = client.BucketExists(ctx, c.Bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s at %s: %w", c.Bucket, endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("bucket %s at %s does not exist", c.Bucket, endpoint)
	}
	return b, nil
}

// transport is http.DefaultTransport's with more idle connections per
// host: a daemon talks to one server from many goroutines.
func transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}

func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, found, err := b.Stat(ctx, key)
	return found, err
}

// Stat is one HEAD request: a read, unlike Touch.
func (b *Bucket) Stat(ctx context.Context, key string) (blobstore.ObjectInfo, bool, error) {
	var info blobstore.ObjectInfo
	var found bool
	err := b.retry(ctx, "stat "+key, func(ctx context.Context) error {
		o, err := b.client.StatObject(ctx, b.bucket, b.prefix+key, minio.StatObjectOptions{})
		if isNotFound(err) {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		found, info = true, blobstore.ObjectInfo{Key: key, Size: o.Size, Modified: o.LastModified}
		return nil
	})
	return info, found, err
}

func (b *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := b.retry(ctx, "get "+key, func(ctx context.Context) error {
		obj, err := b.client.GetObject(ctx, b.bucket, b.prefix+key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer obj.Close()
		data, err = io.ReadAll(io.LimitReader(obj, maxObject+1))
		if isNotFound(err) {
			return permanent{fmt.Errorf("%s: %w", key, castore.ErrNotFound)}
		}
		if err == nil && len(data) > maxObject {
			return permanent{fmt.Errorf("object is larger than %d bytes, which no chunk or chunk list is", maxObject)}
		}
		return err
	})
	return data, err
}

func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	return b.retry(ctx, "put "+key, func(ctx context.Context) error {
		// One PUT (no multipart: objects are at most a chunk) is stored
		// whole or not at all; the MD5 lets the server refuse bytes that
		// changed on the way.
		_, err := b.client.PutObject(ctx, b.bucket, b.prefix+key, bytes.NewReader(data), int64(len(data)),
			minio.PutObjectOptions{DisableMultipart: true, SendContentMd5: true, ContentType: "application/octet-stream"})
		return err
	})
}

// List yields the objects under prefix (keys relative to the store's
// own prefix).
func (b *Bucket) List(ctx context.Context, prefix string) iter.Seq2[blobstore.ObjectInfo, error] {
	return func(yield func(blobstore.ObjectInfo, error) bool) {
		for o := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true}) {
			if o.Err != nil {
				yield(blobstore.ObjectInfo{}, fmt.Errorf("s3 list %s: %w", prefix, o.Err))
				return
			}
			if !yield(blobstore.ObjectInfo{Key: strings.TrimPrefix(o.Key, b.prefix), Size: o.Size, Modified: o.LastModified}, nil) {
				return
			}
		}
	}
}

// Touch renews key's modification time by copying it onto itself
// (server-side: no bytes travel).
func (b *Bucket) Touch(ctx context.Context, key string) error {
	return b.retry(ctx, "touch "+key, func(ctx context.Context) error {
		_, err := b.client.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: b.bucket, Object: b.prefix + key, ReplaceMetadata: true,
				UserMetadata: map[string]string{"Tvix-Touched": time.Now().UTC().Format(time.RFC3339Nano)}},
			minio.CopySrcOptions{Bucket: b.bucket, Object: b.prefix + key})
		if isNotFound(err) {
			return permanent{fmt.Errorf("%s: %w", key, castore.ErrNotFound)}
		}
		return err
	})
}

// Delete removes key; deleting a missing key is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	return b.retry(ctx, "delete "+key, func(ctx context.Context) error {
		return b.client.RemoveObject(ctx, b.bucket, b.prefix+key, minio.RemoveObjectOptions{})
	})
}

func (b *Bucket) Close() error { return nil }

func (b *Bucket) InProcess() bool { return false }

// permanent marks an error no retry can cure.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// retry runs op under the bucket's retry policy: the client retries each
// request a few times itself; this outer loop carries a daemon across a
// restart of the server.
func (b *Bucket) retry(ctx context.Context, what string, op func(context.Context) error) error {
	err := b.policy.Do(ctx, what, op)
	if err == nil {
		return nil
	}
	if p, ok := err.(permanent); ok {
		err = p.error
	}
	return fmt.Errorf("s3 %s: %w", what, err)
}

func isNotFound(err error) bool {
	if errors.Is(err, castore.ErrNotFound) {
		return true
	}
	r, ok := s3Error(err)
	return ok && (r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket)
}

// s3Error finds the server's answer in a (wrapped) error.
func s3Error(err error) (minio.ErrorResponse, bool) {
	var r minio.ErrorResponse
	if errors.As(err, &r) {
		return r, true
	}
	var rp *minio.ErrorResponse
	if errors.As(err, &rp) && rp != nil {
		return *rp, true
	}
	return r, false
}

// retryable: the server was not reached, or answered that it could not
// answer now. A definite answer (missing, forbidden, bad request) is not
// retried.
func retryable(err error) bool {
	var p permanent
	if errors.As(err, &p) || isNotFound(err) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	r, _ := s3Error(err)
	if r.StatusCode >= 500 || r.StatusCode == http.StatusTooManyRequests || r.StatusCode == http.StatusRequestTimeout {
		return true
	}
	switch r.Code {
	case "RequestError", "RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable", "XMinioServerNotInitialized":
		return true
	}
	// Connection-level failures that the client reports as plain errors.
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF")
}
