//! `--scale`: which ReplicaSet a target names.

use crate::report::ReplicaSetReport;

/// `--scale <namespace>/<replicaset-or-deployment>=<replicas>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleTarget {
    pub namespace: String,
    pub name: String,
    pub replicas: usize,
}

impl std::str::FromStr for ScaleTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "--scale {s:?}: expected <namespace>/<replicaset-or-deployment>=<replicas>, e.g. shop/web=3"
            )
        };
        let (target, n) = s.split_once('=').ok_or_else(bad)?;
        let (namespace, name) = target.split_once('/').ok_or_else(bad)?;
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        let replicas = n
            .trim()
            .parse()
            .map_err(|_| format!("--scale {s:?}: {n:?} is not a replica count (0 or more)"))?;
        Ok(ScaleTarget {
            namespace: namespace.into(),
            name: name.into(),
            replicas,
        })
    }
}

/// The ReplicaSet `--scale` names: a ReplicaSet by name, or the one
/// ReplicaSet with pods of a Deployment.
pub(crate) fn resolve(
    sets: &[ReplicaSetReport],
    t: &ScaleTarget,
) -> Result<(String, String), String> {
    let here: Vec<&ReplicaSetReport> = sets.iter().filter(|s| s.namespace == t.namespace).collect();
    let chosen: Vec<&&ReplicaSetReport> = match here.iter().find(|s| s.name == t.name) {
        Some(s) => vec![s],
        None => here
            .iter()
            .filter(|s| s.deployment.as_deref() == Some(t.name.as_str()))
            .collect(),
    };
    let target = format!("{}/{}", t.namespace, t.name);
    match chosen.as_slice() {
        [one] => Ok((one.uid.clone(), one.name.clone())),
        [] => {
            let known: Vec<String> = here
                .iter()
                .map(|s| match &s.deployment {
                    Some(d) => format!("{} (Deployment {d})", s.name),
                    None => s.name.clone(),
                })
                .collect();
            Err(if known.is_empty() {
                format!(
                    "--scale {target}: no ReplicaSet has pods in namespace {:?}",
                    t.namespace
                )
            } else {
                format!(
                    "--scale {target}: no ReplicaSet or Deployment of that name has pods; ReplicaSets with pods in {}: {}",
                    t.namespace,
                    known.join(", ")
                )
            })
        }
        many => Err(format!(
            "--scale {target}: Deployment {} has pods in {} ReplicaSets ({}), a rollout in progress; name the ReplicaSet to scale",
            t.name,
            many.len(),
            many.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_targets() {
        assert_eq!(
            "shop/web=3".parse::<ScaleTarget>(),
            Ok(ScaleTarget {
                namespace: "shop".into(),
                name: "web".into(),
                replicas: 3
            })
        );
        assert_eq!(
            "shop/web=-1".parse::<ScaleTarget>().unwrap_err(),
            "--scale \"shop/web=-1\": \"-1\" is not a replica count (0 or more)"
        );
    }

    #[rstest::rstest]
    #[case::no_namespace("web=3")]
    #[case::empty_namespace("/web=3")]
    #[case::empty_name("shop/=3")]
    #[case::no_replicas("shop/web")]
    #[case::two_slashes("a/b/c=1")]
    fn scale_targets_refused(#[case] bad: &str) {
        assert!(
            bad.parse::<ScaleTarget>()
                .unwrap_err()
                .starts_with(&format!("--scale {bad:?}: expected <namespace>/"))
        );
    }
}
