// Package discovery watches the control-plane members: Nodes labelled master or
// control-plane (filtered by the apiserver, so workers are never sent or cached)
// and the default/kubernetes EndpointSlices. It signals only changes that can
// alter the rendered configuration; status heartbeats are dropped here.
package discovery
