package redirect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names the original monitor uses; other tooling may look for them.
const (
	TableName      = "ocp_nat"
	PreroutingName = "ocp_prerouting"
	OutputName     = "ocp_output"
	Comment        = "OCP_API_LB_REDIRECT"
)

// The hold's table: ours, apart from the original's names.
const (
	HoldTableName = "haproxy_monitor_hold"
	HoldChainName = "hold_new"
)

// Redirect owns the ocp_nat tables.
type Redirect struct {
	VIPs    []netip.Addr
	APIPort uint16
	LBPort  uint16
	// NetNSFd, when non-zero, is a network namespace to program instead of
	// the current one (tests).
	NetNSFd int

	mu sync.Mutex
}

func (r *Redirect) conn() (*nftables.Conn, error) {
	if r.NetNSFd != 0 {
		return nftables.New(nftables.WithNetNSFd(r.NetNSFd))
	}
	return nftables.New()
}

// Ensure makes the rules exactly one per VIP in both chains of its family's
// table: missing ones are added, duplicates, rules for other VIPs or ports
// and foreign-shaped rules with our comment are deleted. It is idempotent.
func (r *Redirect) Ensure() error {
	err := r.eachFamily(func(c *nftables.Conn, fam nftables.TableFamily, vips []netip.Addr) error {
		table := c.AddTable(&nftables.Table{Family: fam, Name: TableName})
		for _, ch := range chains(table) {
			c.AddChain(ch)
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("creating table %s: %w", TableName, err)
		}
		for _, ch := range chains(table) {
			if err := r.reconcileChain(c, table, ch, vips); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nftables: writing redirect rules: %w", err)
	}
	return nil
}

// eachFamily calls fn, under the lock and on one connection, for each
// address family that has VIPs, then sends what fn queued.
func (r *Redirect) eachFamily(fn func(c *nftables.Conn, fam nftables.TableFamily, vips []netip.Addr) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.conn()
	if err != nil {
		return err
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		if vips := r.vipsOf(fam); len(vips) > 0 {
			if err := fn(c, fam, vips); err != nil {
				return err
			}
		}
	}
	return c.Flush()
}

func (r *Redirect) reconcileChain(c *nftables.Conn, table *nftables.Table, ch *nftables.Chain, vips []netip.Addr) error {
	rules, err := c.GetRules(table, ch)
	if err != nil {
		return fmt.Errorf("listing %s: %w", ch.Name, err)
	}
	have := map[netip.Addr]bool{}
	for _, rule := range rules {
		if comment, _ := userdata.GetString(rule.UserData, userdata.TypeComment); comment != Comment {
			continue // not ours
		}
		vip, api, lb, ok := describe(rule)
		if !ok || have[vip] || api != r.APIPort || lb != r.LBPort || !contains(vips, vip) {
			if err := c.DelRule(rule); err != nil {
				return fmt.Errorf("deleting stale rule in %s: %w", ch.Name, err)
			}
			continue
		}
		have[vip] = true
	}
	for _, vip := range vips {
		if !have[vip] {
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: ruleExprs(vip, r.APIPort, r.LBPort),
				UserData: userdata.AppendString(nil, userdata.TypeComment, Comment)})
		}
	}
	return nil
}

// Hold drops the SYNs of new connections from other hosts to VIP:api-port
// (a filter chain before the redirect), so a client sends them again a
// second later, by then to the VIP's next holder; connections already
// established go on. Release or Remove lets them through again.
func (r *Redirect) Hold() error {
	err := r.eachFamily(func(c *nftables.Conn, fam nftables.TableFamily, vips []netip.Addr) error {
		table := c.AddTable(&nftables.Table{Family: fam, Name: HoldTableName})
		c.FlushTable(table)
		ch := c.AddChain(&nftables.Chain{Name: HoldChainName, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle})
		for _, vip := range vips {
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: holdExprs(vip, r.APIPort)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nftables: holding new connections: %w", err)
	}
	return nil
}

// Release deletes the hold's tables; a missing table is not an error.
func (r *Redirect) Release() error {
	return r.deleteTables(HoldTableName)
}

// Remove deletes the ocp_nat tables and the hold; a missing table is not an
// error.
func (r *Redirect) Remove() error {
	return r.deleteTables(TableName, HoldTableName)
}

func (r *Redirect) deleteTables(names ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.conn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	var errs []error
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		tables, err := c.ListTablesOfFamily(fam)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range tables {
			if slices.Contains(names, t.Name) {
				c.DelTable(t)
			}
		}
	}
	if err := errors.Join(append(errs, c.Flush())...); err != nil {
		return fmt.Errorf("nftables: removing %s: %w", strings.Join(names, ", "), err)
	}
	return nil
}

// Rules returns, per chain name, the VIPs our rules redirect (for tests and
// diagnostics).
func (r *Redirect) Rules() (map[string][]netip.Addr, error) {
	c, err := r.conn()
	if err != nil {
		return nil, err
	}
	out := map[string][]netip.Addr{}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		table := &nftables.Table{Family: fam, Name: TableName}
		for _, ch := range chains(table) {
			rules, err := c.GetRules(table, ch)
			if err != nil {
				continue // no such table or chain
			}
			for _, rule := range rules {
				if vip, _, _, ok := describe(rule); ok {
					out[ch.Name] = append(out[ch.Name], vip)
				}
			}
		}
	}
	return out, nil
}

// Present reports whether the rules are fully in place: one per VIP in
// each chain of its family's table.
func (r *Redirect) Present() (bool, error) {
	have, err := r.Rules()
	if err != nil {
		return false, err
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		vips := r.vipsOf(fam)
		if len(vips) == 0 {
			continue
		}
		for _, ch := range chains(&nftables.Table{Family: fam, Name: TableName}) {
			var got []netip.Addr // both families' chains have the same names
			for _, v := range have[ch.Name] {
				if v.Is4() == (fam == nftables.TableFamilyIPv4) {
					got = append(got, v)
				}
			}
			if len(got) != len(vips) {
				return false, nil
			}
			for _, v := range vips {
				if !contains(got, v) {
					return false, nil
				}
			}
		}
	}
	return true, nil
}

func (r *Redirect) vipsOf(fam nftables.TableFamily) []netip.Addr {
	var out []netip.Addr
	for _, v := range r.VIPs {
		if v.Is4() == (fam == nftables.TableFamilyIPv4) {
			out = append(out, v)
		}
	}
	return out
}

func chains(t *nftables.Table) []*nftables.Chain {
	return []*nftables.Chain{
		{Name: PreroutingName, Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest},
		// Locally generated traffic (the node's own clients) to the VIP.
		{Name: OutputName, Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest},
	}
}

// ruleExprs is "<ip|ip6> daddr VIP tcp dport API redirect to :LB".
func ruleExprs(vip netip.Addr, apiPort, lbPort uint16) []expr.Any {
	return append(toAPI(vip, apiPort),
		&expr.Immediate{Register: 1, Data: be16(lbPort)},
		&expr.Redir{RegisterProtoMin: 1})
}

// toAPI matches "<ip|ip6> daddr VIP tcp dport API".
func toAPI(vip netip.Addr, apiPort uint16) []expr.Any {
	offset, length := uint32(16), uint32(4) // IPv4 destination address
	if vip.Is6() {
		offset, length = 24, 16
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: length},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip.AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(apiPort)},
	}
}

// holdExprs is "iifname != lo <ip|ip6> daddr VIP tcp dport API tcp flags &
// (syn|ack) == syn counter drop".
func holdExprs(vip netip.Addr, apiPort uint16) []expr.Any {
	return append([]expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname("lo")},
	}, append(toAPI(vip, apiPort),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop})...)
}

// ifname is an interface name as nftables compares it: NUL-padded to
// IFNAMSIZ.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// describe reads back a rule built by ruleExprs.
func describe(rule *nftables.Rule) (vip netip.Addr, apiPort, lbPort uint16, ok bool) {
	var cmps [][]byte
	var imm []byte
	redir := false
	for _, e := range rule.Exprs {
		switch x := e.(type) {
		case *expr.Cmp:
			cmps = append(cmps, x.Data)
		case *expr.Immediate:
			imm = x.Data
		case *expr.Redir:
			redir = true
		}
	}
	if len(cmps) != 3 || len(imm) != 2 || !redir || !bytes.Equal(cmps[1], []byte{unix.IPPROTO_TCP}) || len(cmps[2]) != 2 {
		return netip.Addr{}, 0, 0, false
	}
	vip, ok = netip.AddrFromSlice(cmps[0])
	return vip, binary.BigEndian.Uint16(cmps[2]), binary.BigEndian.Uint16(imm), ok
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func contains(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}
