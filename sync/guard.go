package sync

import (
	"fmt"
	"math"
)

// Safety holds the limits that hold a suspicious run before anything is written.
// A negative limit turns that guard off.
type Safety struct {
	// MaxDisables: more planned disables in one sink than this holds the run.
	MaxDisables int
	// MaxDisablePercent: more planned disables than this share of the sink's
	// managed, active accounts holds the run.
	MaxDisablePercent float64
	// MaxDeletes: more planned deletes in one sink than this holds the run.
	MaxDeletes int
	// MinSourceRatio: fewer valid identities than this share of the last
	// successful run's holds the run.
	MinSourceRatio float64
}

// DefaultSafety is DESIGN.md's defaults.
var DefaultSafety = Safety{MaxDisables: 100, MaxDisablePercent: 10, MaxDeletes: 0, MinSourceRatio: 0.5}

// GuardTrip is one safety limit that a run exceeded.
type GuardTrip struct {
	// Guard is max_disables, max_disable_percent, max_deletes, min_source_ratio or
	// empty_source.
	Guard string `json:"guard"`
	// Scope is the sink or source it concerns; empty for the whole run.
	Scope string  `json:"scope,omitempty"`
	Got   float64 `json:"got"`
	Limit float64 `json:"limit"`
}

func (g GuardTrip) String() string {
	switch g.Guard {
	case "empty_source":
		return fmt.Sprintf("empty_source: source %s returned no identities", g.Scope)
	case "min_source_ratio":
		return fmt.Sprintf("min_source_ratio: the sources returned %g of the last successful run's valid identities, the limit is %g", g.Got, g.Limit)
	case "max_disable_percent":
		return fmt.Sprintf("max_disable_percent: sink %s would disable %g%% of its managed accounts, the limit is %g%%", g.Scope, g.Got, g.Limit)
	}
	return fmt.Sprintf("%s: sink %s plans %g, the limit is %g", g.Guard, g.Scope, g.Got, g.Limit)
}

// CheckSources applies the guards on what the sources returned: an empty source, and
// a drop below MinSourceRatio of last, the valid identities of the last successful run
// (0 when there was none).
func CheckSources(reads []SourceRead, valid, last int, s Safety) []GuardTrip {
	var trips []GuardTrip
	for _, r := range reads {
		if len(r.Identities) == 0 {
			trips = append(trips, GuardTrip{Guard: "empty_source", Scope: r.Source, Got: 0, Limit: 1})
		}
	}
	if s.MinSourceRatio > 0 && last > 0 {
		if ratio := float64(valid) / float64(last); ratio < s.MinSourceRatio {
			trips = append(trips, GuardTrip{Guard: "min_source_ratio", Got: math.Round(ratio*1000) / 1000, Limit: s.MinSourceRatio})
		}
	}
	return trips
}

// CheckPlan applies the guards on one sink's plan.
func CheckPlan(p *Plan, s Safety) []GuardTrip {
	var trips []GuardTrip
	disables, deletes := p.Count(DisableUser), p.Count(DeleteUser)
	if s.MaxDisables >= 0 && disables > s.MaxDisables {
		trips = append(trips, GuardTrip{Guard: "max_disables", Scope: p.Sink, Got: float64(disables), Limit: float64(s.MaxDisables)})
	}
	if s.MaxDisablePercent >= 0 && p.Managed > 0 && disables > 0 {
		if pct := 100 * float64(disables) / float64(p.Managed); pct > s.MaxDisablePercent {
			trips = append(trips, GuardTrip{Guard: "max_disable_percent", Scope: p.Sink, Got: math.Round(pct*10) / 10, Limit: s.MaxDisablePercent})
		}
	}
	if s.MaxDeletes >= 0 && deletes > s.MaxDeletes {
		trips = append(trips, GuardTrip{Guard: "max_deletes", Scope: p.Sink, Got: float64(deletes), Limit: float64(s.MaxDeletes)})
	}
	return trips
}
