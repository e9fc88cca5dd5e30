package market

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/cyxwiz/cyxwiz/trainspec"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Bounds of a model record.
const (
	MaxModelNameLen        = 128
	MaxModelDescriptionLen = 4096
	MaxModelLicenseLen     = 64
)

// ModelRecord is an entry of the model registry: trained weights by CID,
// the train spec that made them, their final metrics, and the job and
// receipt that show where they came from. Its publisher signs it.
type ModelRecord struct {
	Publisher   string `json:"publisher"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// License names the weights' license, an SPDX identifier by custom.
	License    string `json:"license,omitempty"`
	WeightsCID string `json:"weights_cid"`
	// Spec is the train section that produced the weights: the model's
	// layers, so that anyone can load them.
	Spec    trainspec.Spec     `json:"spec"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// JobID and Receipt name the train job and the signed receipt of the
	// attempt that produced the weights, when the publisher requested it.
	JobID       string         `json:"job_id,omitempty"`
	Receipt     *SignedReceipt `json:"receipt,omitempty"`
	PublishedAt time.Time      `json:"published_at"`
}

// CheckModel validates a model record against its signer and the clock.
func CheckModel(m ModelRecord, signer peer.ID, now time.Time) error {
	switch {
	case m.Publisher != signer.String():
		return fmt.Errorf("model record by %s signed by %s", m.Publisher, signer)
	case m.Name == "" || len(m.Name) > MaxModelNameLen || !utf8.ValidString(m.Name):
		return fmt.Errorf("model name: must be 1 to %d bytes of UTF-8", MaxModelNameLen)
	case len(m.Description) > MaxModelDescriptionLen || !utf8.ValidString(m.Description):
		return fmt.Errorf("model description: at most %d bytes of UTF-8", MaxModelDescriptionLen)
	case len(m.License) > MaxModelLicenseLen:
		return fmt.Errorf("model license: at most %d bytes", MaxModelLicenseLen)
	case len(m.Metrics) > maxResultMetrics:
		return fmt.Errorf("model record has %d metrics, at most %d", len(m.Metrics), maxResultMetrics)
	case m.PublishedAt.After(now.Add(MaxClockSkew)):
		return errors.New("model record is dated in the future")
	}
	if err := checkCID(m.WeightsCID); err != nil {
		return fmt.Errorf("model weights_cid: %w", err)
	}
	if err := m.Spec.Validate(checkCID); err != nil {
		return fmt.Errorf("model spec: %w", err)
	}
	names := make([]string, 0, len(m.Metrics))
	for k := range m.Metrics {
		names = append(names, k)
	}
	if err := checkFields("model record", names...); err != nil {
		return err
	}
	if m.Receipt == nil {
		if m.JobID != "" {
			if err := CheckJobID(m.JobID); err != nil {
				return fmt.Errorf("model job_id: %w", err)
			}
		}
		return nil
	}
	r, _, err := m.Receipt.Open()
	if err != nil {
		return fmt.Errorf("model receipt: %w", err)
	}
	switch {
	case r.JobID != m.JobID:
		return fmt.Errorf("model receipt is for job %s, the record names %s", r.JobID, m.JobID)
	case r.Requester != m.Publisher:
		return errors.New("model receipt was signed by another requester than the publisher")
	case r.Outcome != OutcomeSucceeded:
		return fmt.Errorf("model receipt records a job that %s", r.Outcome)
	case r.Kind != KindTrain:
		return fmt.Errorf("model receipt is for a %s job", r.Kind)
	}
	// The receipt of a train job names its weights: they must be these.
	if !slices.ContainsFunc(r.Outputs, func(o OutputRef) bool { return o.Name == OutputModel && o.CID == m.WeightsCID }) {
		return errors.New("model receipt names other weights, or none")
	}
	return nil
}

// EnvelopeID names a signed message: the hex SHA-256 of its encoding
// (Marshal).
func EnvelopeID(e Envelope) string {
	data, _ := e.Marshal() // a struct of bytes and strings always encodes
	return hashID(data)
}

func hashID(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
