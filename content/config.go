package content

import (
	"errors"
	"fmt"
)

// Config holds the content settings of a node.
type Config struct {
	// QuotaMiB bounds the blockstore's size on disk; 0 means no bound.
	QuotaMiB int64 `json:"quota_mib"`
	// MaxFetchMiB bounds one fetch (a whole DAG); 0 means no bound.
	MaxFetchMiB int64 `json:"max_fetch_mib"`
	// FetchTimeoutSeconds bounds how long a fetch may go without receiving
	// a block before it fails as not found.
	FetchTimeoutSeconds int `json:"fetch_timeout_seconds"`
	// ReprovideIntervalMinutes is how often pinned roots are announced to
	// the DHT again; 0 turns providing off.
	ReprovideIntervalMinutes int `json:"reprovide_interval_minutes"`
	// SyncWrites makes every block write reach the disk before it returns.
	SyncWrites bool `json:"sync_writes"`
}

// DefaultConfig returns the content settings of a new node.
func DefaultConfig() Config {
	return Config{
		QuotaMiB:                 0,
		MaxFetchMiB:              16 << 10,
		FetchTimeoutSeconds:      60,
		ReprovideIntervalMinutes: 12 * 60,
		SyncWrites:               false,
	}
}

// Validate reports every setting that cannot work, each naming its key.
func (c Config) Validate() error {
	var errs []error
	if c.QuotaMiB < 0 {
		errs = append(errs, fmt.Errorf("quota_mib: %d is negative", c.QuotaMiB))
	}
	if c.MaxFetchMiB < 0 {
		errs = append(errs, fmt.Errorf("max_fetch_mib: %d is negative", c.MaxFetchMiB))
	}
	if c.FetchTimeoutSeconds < 1 {
		errs = append(errs, fmt.Errorf("fetch_timeout_seconds: %d must be at least 1", c.FetchTimeoutSeconds))
	}
	if c.ReprovideIntervalMinutes < 0 {
		errs = append(errs, fmt.Errorf("reprovide_interval_minutes: %d is negative", c.ReprovideIntervalMinutes))
	}
	return errors.Join(errs...)
}
