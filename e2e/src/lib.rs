//! End-to-end suite for MeshBaseline: an in-process Kubernetes API simulator (`sim`) and a
//! harness (`cluster`) that runs the same scenarios against it or against a real cluster.

pub mod sim;
