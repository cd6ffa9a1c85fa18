package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
)

// auditWrites are the writes the API server's audit log recorded from an offset on.
type auditWrites struct {
	// ByPeer counts writes by the peer's own users; ByResource splits them by "verb resource".
	ByPeer     int            `json:"byPeer"`
	ByResource map[string]int `json:"byResource"`
	// Leases are the peer's writes to coordination.k8s.io Leases (leader election).
	Leases int `json:"leases"`
	// AllUsers counts every write in the window, whoever made it.
	AllUsers int `json:"allUsers"`
}

var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

func auditSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// countWrites reads the audit log (one JSON event per line) from offset.
func countWrites(path string, offset int64, users []string) (auditWrites, error) {
	out := auditWrites{ByResource: map[string]int{}}
	f, err := os.Open(path)
	if err != nil {
		return out, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return out, err
	}
	peer := map[string]bool{}
	for _, u := range users {
		peer[u] = true
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			var ev struct {
				Stage string `json:"stage"`
				Verb  string `json:"verb"`
				User  struct {
					Username string `json:"username"`
				} `json:"user"`
				ObjectRef struct {
					Resource    string `json:"resource"`
					Subresource string `json:"subresource"`
				} `json:"objectRef"`
			}
			if json.Unmarshal(line, &ev) == nil && ev.Stage == "ResponseComplete" && writeVerbs[ev.Verb] {
				out.AllUsers++
				if peer[ev.User.Username] {
					out.ByPeer++
					res := ev.ObjectRef.Resource
					if ev.ObjectRef.Subresource != "" {
						res += "/" + ev.ObjectRef.Subresource
					}
					out.ByResource[ev.Verb+" "+res]++
					if ev.ObjectRef.Resource == "leases" {
						out.Leases++
					}
				}
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
