package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// credential is how a kubeconfig authenticates: a client certificate or a bearer token.
type credential struct {
	certFile, keyFile string
	token             string
}

func writeKubeconfig(path, server, caFile, namespace string, cred credential) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	auth := &clientcmdapi.AuthInfo{Token: cred.token}
	if cred.certFile != "" {
		if auth.ClientCertificateData, err = os.ReadFile(cred.certFile); err != nil {
			return err
		}
		if auth.ClientKeyData, err = os.ReadFile(cred.keyFile); err != nil {
			return err
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testenv"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["user"] = auth
	cfg.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: "user", Namespace: namespace}
	cfg.CurrentContext = "testenv"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// mintUser writes a kubeconfig for a plain user authenticated by a client certificate.
func mintUser(st *state, user string, groups []string, out string) error {
	p, err := loadOrCreatePKI(filepath.Join(st.Dir, "pki"))
	if err != nil {
		return err
	}
	name := "user-" + safeName(user)
	if err := p.issueClient(name, user, groups); err != nil {
		return err
	}
	return writeKubeconfig(out, st.Server, p.path("ca.crt"), "", credential{
		certFile: p.path(name + ".crt"), keyFile: p.path(name + ".key"),
	})
}

// mintServiceAccount writes a kubeconfig with a bound token of an existing ServiceAccount,
// obtained through the TokenRequest API as the admin.
func mintServiceAccount(st *state, namespace, name, out string, ttl time.Duration) error {
	admin, err := clientcmd.BuildConfigFromFlags("", st.AdminKubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return err
	}
	seconds := int64(ttl.Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for serviceaccount %s/%s: %w", namespace, name, err)
	}
	return writeKubeconfig(out, st.Server, filepath.Join(st.Dir, "pki", "ca.crt"), namespace, credential{token: tr.Status.Token})
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(s))
}
