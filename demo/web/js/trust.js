// The public key whose signature every model must carry (docs/security.md). `mnist-edge web
// --public-key PEM` (or $MNIST_EDGE_PUBLIC_KEY) writes it here; null: models need no signature.
export const PUBLIC_KEY_PEM = null; // written by `mnist-edge web`
