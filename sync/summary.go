package sync

import (
	"encoding/json"
	"time"
)

// Result is how a run ended.
type Result string

const (
	ResultSuccess Result = "success" // every planned operation applied (or none planned)
	ResultPartial Result = "partial" // some operations failed; they are retried next run
	ResultFailed  Result = "failed"  // the run stopped: a source or the snapshot failed
	ResultHeld    Result = "held"    // a guard held the run; nothing was applied
	ResultDryRun  Result = "dry_run" // planned and printed only
)

// RunSummary is the record of one run, kept in the run history.
type RunSummary struct {
	ID       uint64         `json:"id"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Result   Result         `json:"result"`
	Error    string         `json:"error,omitempty"`
	Sources  map[string]int `json:"sources,omitempty"` // identities read per source
	// Identities is how many valid identities the sources gave after merging: the
	// base of the min_source_ratio guard on the next run.
	Identities int           `json:"identities"`
	Held       int           `json:"held,omitempty"` // present but invalid
	Guards     []GuardTrip   `json:"guards,omitempty"`
	Accepted   bool          `json:"accepted,omitempty"` // the guards were overridden
	Sinks      []SinkSummary `json:"sinks,omitempty"`
	// Delta is set when the source was read incrementally: only what changed since
	// the last read, so nobody was disabled and the source guards did not apply.
	Delta bool `json:"delta,omitempty"`
	// Marks are the incremental sources' marks to read from next time: this run's
	// when it applied everything, else the previous run's, carried forward.
	Marks map[string]json.RawMessage `json:"marks,omitempty"`
}

// SinkSummary counts one sink's operations in a run.
type SinkSummary struct {
	Sink    string         `json:"sink"`
	Planned map[OpKind]int `json:"planned,omitempty"`
	Applied map[OpKind]int `json:"applied,omitempty"`
	Failed  map[OpKind]int `json:"failed,omitempty"`
	Skipped map[OpKind]int `json:"skipped,omitempty"` // not attempted: an earlier op failed, or the run was stopped
	Errors  []OpError      `json:"errors,omitempty"`
	// Invitations counts this run's invitations by outcome: sent, failed (still
	// pending, tried again next run), expired (the person needs a manual reset).
	Invitations map[string]int `json:"invitations,omitempty"`
}

// OpError is one failed operation, for the history and the report.
type OpError struct {
	ID    string `json:"id"`
	Kind  OpKind `json:"kind"`
	Error string `json:"error"`
}

// FailedOps is the number of failed operations across sinks.
func (r *RunSummary) FailedOps() int {
	n := 0
	for _, s := range r.Sinks {
		for _, c := range s.Failed {
			n += c
		}
	}
	return n
}
