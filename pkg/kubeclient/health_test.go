package kubeclient

import (
	"errors"
	"net/http"
	"testing"
)

func TestHealth(t *testing.T) {
	h := &Health{}
	var answer func() (*http.Response, error)
	rt := h.Wrap(roundTripperFunc(func(*http.Request) (*http.Response, error) { return answer() }))
	do := func(code int, err error) {
		answer = func() (*http.Response, error) {
			if err != nil {
				return nil, err
			}
			return &http.Response{StatusCode: code, Status: http.StatusText(code)}, nil
		}
		req, _ := http.NewRequest(http.MethodGet, "https://api.example/api/v1/nodes", nil)
		_, _ = rt.RoundTrip(req)
	}
	do(200, nil)
	if since, _ := h.Failing(); !since.IsZero() {
		t.Fatal("failing after a 200")
	}
	do(401, nil)
	since, last := h.Failing()
	if since.IsZero() || last != "Unauthorized" {
		t.Fatalf("after a 401: %v %q", since, last)
	}
	do(500, nil)
	do(0, errors.New("connection reset"))
	if s, last := h.Failing(); !s.Equal(since) || last != "connection reset" {
		t.Fatalf("the stretch began %v (want %v), last %q", s, since, last)
	}
	do(403, nil) // about a resource: neither
	if s, _ := h.Failing(); !s.Equal(since) {
		t.Fatal("a 403 ended the stretch")
	}
	do(200, nil)
	if s, _ := h.Failing(); !s.IsZero() {
		t.Fatal("a 200 did not end the stretch")
	}
}
