package tables

// State is a TCP socket state as the kernel numbers it.
type State uint8

// The kernel's TCP state codes, mirroring the enum in include/net/tcp_states.h.
// /proc/net/tcp prints them in hex in the "st" column; inet_diag reports the
// same numbers.
const (
	StateEstablished State = 1
	StateSynSent     State = 2
	StateSynRecv     State = 3
	StateFinWait1    State = 4
	StateFinWait2    State = 5
	StateTimeWait    State = 6
	StateClose       State = 7
	StateCloseWait   State = 8
	StateLastAck     State = 9
	StateListen      State = 10
	StateClosing     State = 11

	// NumStates sizes per-state arrays; index 0 is never a valid state.
	NumStates = 12
)

// StateNames holds the label value of each state: the lower-case kernel names,
// as node_exporter's tcpstat collector spells them.
var StateNames = [NumStates]string{
	StateEstablished: "established",
	StateSynSent:     "syn_sent",
	StateSynRecv:     "syn_recv",
	StateFinWait1:    "fin_wait1",
	StateFinWait2:    "fin_wait2",
	StateTimeWait:    "time_wait",
	StateClose:       "close",
	StateCloseWait:   "close_wait",
	StateLastAck:     "last_ack",
	StateListen:      "listen",
	StateClosing:     "closing",
}

// AllStates lists the valid states in kernel order, for families that emit
// every state so that rules can compare against zero.
var AllStates = []State{
	StateEstablished, StateSynSent, StateSynRecv, StateFinWait1, StateFinWait2,
	StateTimeWait, StateClose, StateCloseWait, StateLastAck, StateListen, StateClosing,
}

// Valid reports whether s is one of the eleven kernel states.
func (s State) Valid() bool { return s >= StateEstablished && s <= StateClosing }

// String returns the label value of the state, or "unknown".
func (s State) String() string {
	if !s.Valid() {
		return "unknown"
	}
	return StateNames[s]
}

// ParseState returns the state whose label value is name.
func ParseState(name string) (State, bool) {
	for _, s := range AllStates {
		if StateNames[s] == name {
			return s, true
		}
	}
	return 0, false
}
