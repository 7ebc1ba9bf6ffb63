// fakeedge stands in for the Cloudflare edge, for the e2e suite: a connector connects to it
// over QUIC, registers its connections and pushes its local configuration. On loopback, a
// connector started with `--edge ADDR --protocol quic` (and SSL_CERT_FILE naming the
// certificate this program writes with -ca-out) is sent the HTTP requests given with -request.
// On the real node, the connectors find it as they find the edge (DNS), and it trusts the
// certificate given with -cert and -key; with -visitors, every HTTP request to that address is
// a visitor's: it goes to one registered connection of the tunnel it names (header
// Cf-Tunnel-Id, or the only tunnel connected), round robin, and the connector's answer comes
// back, with the connection that carried it in the response header Cf-Connection
// (TUNNEL/INDEX/SECRET, SECRET the first 4 bytes of the SHA-256 of the tunnel secret the
// connection registered with, in hex). The connector then exports what it exports in
// production once connected and serving: its registration, RPC and response metrics.
//
// With -admin, it also stands in for the dashboard of a remotely-managed tunnel: PUT
// /tunnels/ID/configuration with {"version": N, "config": {"ingress": [...]}} pushes that
// configuration to every connection of the tunnel, and to each that registers later, as the
// edge does (cloudflared's UpdateConfiguration RPC), answering with what each connection
// applied; DELETE /tunnels/ID/configuration stops the pushes to new connections.
//
// It speaks cloudflared's own protocol with cloudflared's own packages (the registration RPC
// server, the request stream and the configuration client of tunnelrpc). With -refuse-first,
// the first registration is refused, so that the connector counts a failed registration, and
// retries.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/quic-go/quic-go"

	"github.com/cloudflare/cloudflared/tunnelrpc"
	"github.com/cloudflare/cloudflared/tunnelrpc/pogs"
	rpcquic "github.com/cloudflare/cloudflared/tunnelrpc/quic"
)

// The server name and ALPN protocol cloudflared dials the edge with over QUIC.
const (
	serverName = "quic.cftunnel.com"
	alpn       = "argotunnel"
)

type requests []string

func (r *requests) String() string     { return strings.Join(*r, ",") }
func (r *requests) Set(v string) error { *r = append(*r, v); return nil }

type edge struct {
	refuseFirst bool
	refused     atomic.Bool
	requests    requests
	sendOnce    sync.Once

	mu sync.Mutex
	// The registered connections of each tunnel, in registration order, and the next to use.
	tunnels map[uuid.UUID][]*registrar
	next    map[uuid.UUID]int
	// The configuration pushed to each remotely-managed tunnel's connections.
	remote map[uuid.UUID]remoteConfig
}

// remoteConfig is a dashboard's configuration of a tunnel: its version and its JSON.
type remoteConfig struct {
	Version int32           `json:"version"`
	Config  json.RawMessage `json:"config"`
}

// applied is what one connection answered to a pushed configuration.
type applied struct {
	Connection         byte   `json:"connection"`
	LastAppliedVersion int32  `json:"lastAppliedVersion"`
	Error              string `json:"error,omitempty"`
}

// registrar answers one QUIC connection's registration RPCs.
type registrar struct {
	edge       *edge
	conn       quic.Connection
	registered chan struct{}
	once       sync.Once
	tunnel     uuid.UUID
	index      byte
	// The first 4 bytes of the SHA-256 of the tunnel secret it registered with, in hex.
	secret string
}

// add makes r a connection visitors' requests may take.
func (e *edge) add(r *registrar) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tunnels[r.tunnel] = append(e.tunnels[r.tunnel], r)
}

// remove takes r out of its tunnel's connections (unregistered, or the connection closed).
func (e *edge) remove(r *registrar) {
	e.mu.Lock()
	defer e.mu.Unlock()
	conns := e.tunnels[r.tunnel]
	for i, c := range conns {
		if c == r {
			e.tunnels[r.tunnel] = append(conns[:i:i], conns[i+1:]...)
			log.Printf("connection %d of tunnel %s is gone", r.index, r.tunnel)
			break
		}
	}
	if len(e.tunnels[r.tunnel]) == 0 {
		delete(e.tunnels, r.tunnel)
	}
}

// pick chooses the connection for a visitor's request: the next registered connection of the
// tunnel named, or of the only tunnel connected when none is named.
func (e *edge) pick(name string) (*registrar, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var tunnel uuid.UUID
	if name != "" {
		id, err := uuid.Parse(name)
		if err != nil {
			return nil, fmt.Errorf("Cf-Tunnel-Id %q is not a UUID", name)
		}
		tunnel = id
	} else {
		if len(e.tunnels) != 1 {
			return nil, fmt.Errorf("%d tunnels are connected: name one with Cf-Tunnel-Id", len(e.tunnels))
		}
		for id := range e.tunnels {
			tunnel = id
		}
	}
	conns := e.tunnels[tunnel]
	if len(conns) == 0 {
		return nil, fmt.Errorf("no connection of tunnel %s is registered", tunnel)
	}
	i := e.next[tunnel] % len(conns)
	e.next[tunnel] = i + 1
	return conns[i], nil
}

// hopByHop are the headers a proxy does not pass on.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Cf-Tunnel-Id": true,
}

// ServeHTTP passes a visitor's request to a connector over a new stream of one of its
// tunnel's connections, and the connector's answer back, as the edge does.
func (e *edge) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r, err := e.pick(req.Header.Get("Cf-Tunnel-Id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	stream, err := r.conn.OpenStreamSync(req.Context())
	if err != nil {
		http.Error(w, fmt.Sprintf("no stream on connection %d of tunnel %s: %v", r.index, r.tunnel, err), http.StatusBadGateway)
		return
	}
	defer stream.CancelRead(0)
	_ = stream.SetDeadline(time.Now().Add(30 * time.Second))
	metadata := []pogs.Metadata{
		{Key: "HttpMethod", Val: req.Method},
		{Key: "HttpHost", Val: req.Host},
	}
	for key, values := range req.Header {
		if hopByHop[key] {
			continue
		}
		for _, v := range values {
			metadata = append(metadata, pogs.Metadata{Key: "HttpHeader:" + key, Val: v})
		}
	}
	rcs := rpcquic.RequestClientStream{ReadWriteCloser: stream}
	target := "https://" + req.Host + req.URL.RequestURI()
	if err := rcs.WriteConnectRequestData(target, pogs.ConnectionTypeHTTP, metadata...); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if _, err := io.Copy(stream, req.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	_ = stream.Close()
	resp, err := rcs.ReadConnectResponseData()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if resp.Error != "" {
		http.Error(w, "connector: "+resp.Error, http.StatusBadGateway)
		return
	}
	status := http.StatusBadGateway
	for _, m := range resp.Metadata {
		switch {
		case m.Key == "HttpStatus":
			fmt.Sscanf(m.Val, "%d", &status)
		case strings.HasPrefix(m.Key, "HttpHeader:"):
			w.Header().Add(strings.TrimPrefix(m.Key, "HttpHeader:"), m.Val)
		}
	}
	w.Header().Set("Cf-Connection", fmt.Sprintf("%s/%d/%s", r.tunnel, r.index, r.secret))
	w.WriteHeader(status)
	_, _ = io.Copy(w, stream)
}

func (r *registrar) RegisterConnection(_ context.Context, auth pogs.TunnelAuth, tunnelID uuid.UUID, connIndex byte, _ *pogs.ConnectionOptions) (*pogs.ConnectionDetails, error) {
	if r.edge.refuseFirst && r.edge.refused.CompareAndSwap(false, true) {
		log.Printf("refused the registration of connection %d of tunnel %s", connIndex, tunnelID)
		return nil, errors.New("refused by the stand-in edge")
	}
	log.Printf("registered connection %d of tunnel %s", connIndex, tunnelID)
	r.once.Do(func() {
		digest := sha256.Sum256(auth.TunnelSecret)
		r.tunnel, r.index, r.secret = tunnelID, connIndex, fmt.Sprintf("%x", digest[:4])
		r.edge.add(r)
		close(r.registered)
		go r.edge.pushStored(r)
	})
	return &pogs.ConnectionDetails{UUID: uuid.New(), Location: "loopback"}, nil
}

func (r *registrar) UnregisterConnection(context.Context) {
	log.Printf("connection %d of tunnel %s unregisters", r.index, r.tunnel)
	r.edge.remove(r)
}

func (r *registrar) UpdateLocalConfiguration(_ context.Context, config []byte) error {
	log.Printf("local configuration pushed (%d bytes)", len(config))
	return nil
}

// push sends cfg to the connector of r over a new RPC stream, as the edge pushes a
// remotely-managed tunnel's configuration, and returns what it applied.
func (r *registrar) push(ctx context.Context, cfg remoteConfig) applied {
	out := applied{Connection: r.index, LastAppliedVersion: -1}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := r.conn.OpenStreamSync(ctx)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	client, err := rpcquic.NewCloudflaredClient(ctx, stream, 10*time.Second)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	defer client.Close()
	resp, err := client.UpdateConfiguration(ctx, cfg.Version, cfg.Config)
	switch {
	case err != nil:
		out.Error = err.Error()
	case resp.Err != nil:
		out.LastAppliedVersion, out.Error = resp.LastAppliedVersion, resp.Err.Error()
	default:
		out.LastAppliedVersion = resp.LastAppliedVersion
	}
	log.Printf("configuration version %d pushed to connection %d of tunnel %s: %+v", cfg.Version, r.index, r.tunnel, out)
	return out
}

// pushStored pushes the stored configuration of r's tunnel, if it has one, to a connection
// just registered.
func (e *edge) pushStored(r *registrar) {
	e.mu.Lock()
	cfg, ok := e.remote[r.tunnel]
	e.mu.Unlock()
	if ok {
		// Let the connector take the registration's answer first.
		time.Sleep(500 * time.Millisecond)
		r.push(context.Background(), cfg)
	}
}

// admin serves the dashboard's stand-in: PUT and DELETE /tunnels/{id}/configuration.
func (e *edge) admin() http.Handler {
	mux := http.NewServeMux()
	tunnel := func(w http.ResponseWriter, req *http.Request) (uuid.UUID, bool) {
		id, err := uuid.Parse(req.PathValue("id"))
		if err != nil {
			http.Error(w, fmt.Sprintf("tunnel %q is not a UUID", req.PathValue("id")), http.StatusBadRequest)
		}
		return id, err == nil
	}
	mux.HandleFunc("PUT /tunnels/{id}/configuration", func(w http.ResponseWriter, req *http.Request) {
		id, ok := tunnel(w, req)
		if !ok {
			return
		}
		var cfg remoteConfig
		if err := json.NewDecoder(req.Body).Decode(&cfg); err != nil || len(cfg.Config) == 0 {
			http.Error(w, fmt.Sprintf(`want {"version": N, "config": {...}}: %v`, err), http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.remote[id] = cfg
		conns := append([]*registrar(nil), e.tunnels[id]...)
		e.mu.Unlock()
		answers := []applied{}
		for _, r := range conns {
			answers = append(answers, r.push(req.Context(), cfg))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answers)
	})
	mux.HandleFunc("DELETE /tunnels/{id}/configuration", func(w http.ResponseWriter, req *http.Request) {
		id, ok := tunnel(w, req)
		if !ok {
			return
		}
		e.mu.Lock()
		delete(e.remote, id)
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// send sends one GET request for target over a new stream of conn and returns the status.
func send(ctx context.Context, conn quic.Connection, target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return "", err
	}
	defer stream.CancelRead(0)
	_ = stream.SetDeadline(time.Now().Add(20 * time.Second))
	rcs := rpcquic.RequestClientStream{ReadWriteCloser: stream}
	if err := rcs.WriteConnectRequestData(target, pogs.ConnectionTypeHTTP,
		pogs.Metadata{Key: "HttpMethod", Val: "GET"},
		pogs.Metadata{Key: "HttpHost", Val: u.Host},
		pogs.Metadata{Key: "HttpHeader:User-Agent", Val: "fakeedge"},
	); err != nil {
		return "", err
	}
	// No request body: close our side of the stream.
	_ = stream.Close()
	resp, err := rcs.ReadConnectResponseData()
	if err != nil {
		return "", err
	}
	if resp.Error != "" {
		return "", errors.New(resp.Error)
	}
	_, _ = io.Copy(io.Discard, stream)
	for _, m := range resp.Metadata {
		if m.Key == "HttpStatus" {
			return m.Val, nil
		}
	}
	return "", errors.New("no HttpStatus in the response")
}

func (e *edge) serve(ctx context.Context, conn quic.Connection) {
	control, err := conn.AcceptStream(ctx)
	if err != nil {
		log.Printf("no control stream: %v", err)
		return
	}
	r := &registrar{edge: e, conn: conn, registered: make(chan struct{})}
	go func() {
		<-conn.Context().Done()
		select {
		case <-r.registered:
			e.remove(r)
		default:
		}
	}()
	go func() {
		select {
		case <-r.registered:
		case <-ctx.Done():
			return
		}
		e.sendOnce.Do(func() {
			// Let the connector take the registration's answer first.
			time.Sleep(500 * time.Millisecond)
			for _, target := range e.requests {
				status, err := send(ctx, conn, target)
				if err != nil {
					fmt.Printf("request %s: error %v\n", target, err)
				} else {
					fmt.Printf("request %s: %s\n", target, status)
				}
			}
			fmt.Println("requests sent")
		})
	}()
	if err := tunnelrpc.NewRegistrationServer(r).Serve(ctx, control); err != nil && ctx.Err() == nil {
		log.Printf("control stream ended: %v", err)
	}
}

// certificate makes a self-signed certificate for serverName and writes it, PEM, to caOut.
func certificate(caOut string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: serverName},
		DNSNames:              []string{serverName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(caOut, pemBytes, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:7844", "UDP address to serve QUIC on")
	caOut := flag.String("ca-out", "", "file to write the edge's self-signed certificate to (PEM), for SSL_CERT_FILE")
	certFile := flag.String("cert", "", "the edge's certificate (PEM, for quic.cftunnel.com), instead of a self-signed one")
	keyFile := flag.String("key", "", "the key of -cert (PEM)")
	visitors := flag.String("visitors", "", "TCP address to take visitors' HTTP requests on")
	admin := flag.String("admin", "", "TCP address to take remotely-managed tunnels' configurations on")
	e := &edge{tunnels: map[uuid.UUID][]*registrar{}, next: map[uuid.UUID]int{}, remote: map[uuid.UUID]remoteConfig{}}
	flag.BoolVar(&e.refuseFirst, "refuse-first", false, "refuse the first registration")
	flag.Var(&e.requests, "request", "URL to send a GET request for, once a connection is registered (repeatable)")
	flag.Parse()
	var cert tls.Certificate
	var err error
	switch {
	case *certFile != "":
		cert, err = tls.LoadX509KeyPair(*certFile, *keyFile)
	case *caOut != "":
		cert, err = certificate(*caOut)
	default:
		err = errors.New("-ca-out or -cert is required")
	}
	if err != nil {
		log.Fatal(err)
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}}
	listener, err := quic.ListenAddr(*listen, tlsConfig, &quic.Config{
		EnableDatagrams: true,
		MaxIdleTimeout:  30 * time.Second,
		KeepAlivePeriod: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving QUIC on %s", *listen)
	if *visitors != "" {
		go func() {
			log.Printf("taking visitors' requests on %s", *visitors)
			log.Fatal(http.ListenAndServe(*visitors, e))
		}()
	}
	if *admin != "" {
		go func() {
			log.Printf("taking tunnels' configurations on %s", *admin)
			log.Fatal(http.ListenAndServe(*admin, e.admin()))
		}()
	}
	ctx := context.Background()
	for {
		conn, err := listener.Accept(ctx)
		if err != nil {
			log.Fatal(err)
		}
		go e.serve(ctx, conn)
	}
}
