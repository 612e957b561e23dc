//go:build race

package proctable

const raceEnabled = true
