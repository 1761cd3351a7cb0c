package sync

import "fmt"

// GuardTrip is one safety limit that a run's plan exceeded.
type GuardTrip struct {
	Guard string  `json:"guard"`           // max_disables, max_disable_percent, max_deletes, min_source_ratio, empty_source
	Scope string  `json:"scope,omitempty"` // the sink or source it concerns
	Got   float64 `json:"got"`
	Limit float64 `json:"limit"`
}

func (g GuardTrip) String() string {
	if g.Scope == "" {
		return fmt.Sprintf("%s: %g exceeds the limit %g", g.Guard, g.Got, g.Limit)
	}
	return fmt.Sprintf("%s (%s): %g exceeds the limit %g", g.Guard, g.Scope, g.Got, g.Limit)
}
