package callpay

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the budgets, by escrow ID.
var (
	keeperBucket = []byte("callpay-provider-budgets")
	payerBucket  = []byte("callpay-caller-budgets")
)

// putAll writes records, by key, into bucket in one transaction.
func putAll[T any](db *bolt.DB, bucket []byte, recs map[string]T) error {
	if len(recs) == 0 {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		for k, r := range recs {
			data, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), data); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadAll reads every record of bucket.
func loadAll[T any](db *bolt.DB, bucket []byte) (map[string]*T, error) {
	out := map[string]*T{}
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r := new(T)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("budget %s: %w", k, err)
			}
			out[string(k)] = r
			return nil
		})
	})
	return out, err
}

// deleteAll removes the records of keys from bucket.
func deleteAll(db *bolt.DB, bucket []byte, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// KeepSettled is how long a settled budget is kept past its deadline,
// for the record, before it is deleted.
const KeepSettled = 7 * 24 * time.Hour
