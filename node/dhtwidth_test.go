package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// A provider record goes to the node's k = node.DHTBucketSize closest DHT
// servers, not IPFS's 20: in a swarm where a crowd of viewers announces
// one stream, every replica is a dial (an ADD_PROVIDER and the lookup's
// follow-up query) at a peer bound. Later nodes still find the record.
func TestProvideReachesBucketSizeReplicas(t *testing.T) {
	const nodes = 26
	boot := dhtNode(t, nil, time.Hour)
	all := []*node.Node{boot}
	for range nodes - 1 {
		all = append(all, dhtNode(t, boot, time.Hour))
	}
	// Every node has looked itself up on joining; wait until the tables
	// know most of the swarm, so that the closest set is the true one.
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range all {
		for n.DHT().RoutingTable().Size() < node.DHTBucketSize {
			if time.Now().After(deadline) {
				t.Fatalf("a node's routing table holds %d peers after 15 s, want %d or more", n.DHT().RoutingTable().Size(), node.DHTBucketSize)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	mh, err := multihash.Sum([]byte("a live channel"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	key := cid.NewCidV1(cid.Raw, mh)
	announcer := all[len(all)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := announcer.DHT().Provide(ctx, key, true); err != nil {
		t.Fatalf("provide: %v", err)
	}
	// ADD_PROVIDER is a message without an answer: the replicas store it
	// a moment after Provide returns. Count until the count holds still.
	holders := func() (int, *node.Node) {
		n, seeker := 0, (*node.Node)(nil) // seeker: a node that holds no replica
		for _, o := range all[:len(all)-1] {
			provs, err := o.DHT().ProviderStore().GetProviders(ctx, mh)
			if err != nil {
				t.Fatal(err)
			}
			held := false
			for _, p := range provs {
				held = held || p.ID == announcer.Host().ID()
			}
			if held {
				n++
			} else if seeker == nil {
				seeker = o
			}
		}
		return n, seeker
	}
	replicas, seeker := holders()
	settle := time.Now().Add(10 * time.Second)
	for still := time.Now(); time.Since(still) < 500*time.Millisecond && time.Now().Before(settle); time.Sleep(20 * time.Millisecond) {
		if n, s := holders(); n != replicas {
			replicas, seeker, still = n, s, time.Now()
		}
	}
	if replicas == 0 || replicas > node.DHTBucketSize {
		t.Fatalf("the provider record is held by %d of %d other nodes, want 1 to %d", replicas, nodes-1, node.DHTBucketSize)
	}
	// A node that holds no replica finds the announcer.
	found := false
	for ai := range seeker.DHT().FindProvidersAsync(ctx, key, 1) {
		found = found || ai.ID == announcer.Host().ID()
	}
	if !found {
		t.Fatal("a provider lookup did not find the announcer")
	}
	t.Logf("%d replicas of the provider record among %d nodes", replicas, nodes-1)
}
