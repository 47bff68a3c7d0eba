//! The benchmarks ([`Task`]) and the numbers reported on them ([`Metric`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::datasets::{FashionIqCategory, StsYear};
use crate::error::EvalError;

/// One benchmark of the paper, in the order of its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Task {
    /// Flickr30K test (1k images x 5 captions), text-image retrieval.
    Flickr30k,
    /// COCO 5k test (5 captions each), text-image retrieval.
    Coco,
    /// Flickr30K with the captions rendered as images (image-image retrieval).
    Flickr30kImageImage,
    /// COCO with the captions rendered as images (image-image retrieval).
    CocoImageImage,
    /// CIRR validation split, composed image retrieval.
    CirrVal,
    /// CIRR test1 split: no labels, a submission file for the test server.
    CirrTest1,
    /// FashionIQ validation split (dress, shirt, toptee), composed image retrieval.
    FashionIqVal,
    /// STS 2012.
    Sts12,
    /// STS 2013 (without SMT, as in SentEval).
    Sts13,
    /// STS 2014.
    Sts14,
    /// STS 2015.
    Sts15,
    /// STS 2016.
    Sts16,
    /// STS Benchmark test.
    StsBenchmark,
    /// SICK relatedness test.
    SickRelatedness,
    /// Mean of the seven STS tasks.
    StsAverage,
    /// The bundled mini set (`assets/mini/`): text-image retrieval over ~20 CC0 images with
    /// hand-written captions; a sanity check, not a paper benchmark.
    Mini,
    /// WordSim353 word relatedness (Spearman), a sanity check of the text side.
    #[serde(rename = "wordsim353")]
    WordSim353,
    /// SimLex-999 word similarity (Spearman), a sanity check of the text side.
    #[serde(rename = "simlex999")]
    SimLex999,
}

impl Task {
    /// The seven STS tasks averaged into [`Task::StsAverage`].
    pub const STS: [Task; 7] = [
        Task::Sts12,
        Task::Sts13,
        Task::Sts14,
        Task::Sts15,
        Task::Sts16,
        Task::StsBenchmark,
        Task::SickRelatedness,
    ];

    /// The name used in tables.
    pub fn display_name(self) -> &'static str {
        match self {
            Task::Flickr30k => "Flickr30K",
            Task::Coco => "COCO",
            Task::Flickr30kImageImage => "Flickr30K image-image",
            Task::CocoImageImage => "COCO image-image",
            Task::CirrVal => "CIRR val",
            Task::CirrTest1 => "CIRR test1",
            Task::FashionIqVal => "FashionIQ val",
            Task::Sts12 => "STS12",
            Task::Sts13 => "STS13",
            Task::Sts14 => "STS14",
            Task::Sts15 => "STS15",
            Task::Sts16 => "STS16",
            Task::StsBenchmark => "STS-B",
            Task::SickRelatedness => "SICK-R",
            Task::StsAverage => "STS avg",
            Task::Mini => "mini",
            Task::WordSim353 => "WordSim353",
            Task::SimLex999 => "SimLex-999",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

impl From<StsYear> for Task {
    fn from(year: StsYear) -> Self {
        match year {
            StsYear::Sts12 => Task::Sts12,
            StsYear::Sts13 => Task::Sts13,
            StsYear::Sts14 => Task::Sts14,
            StsYear::Sts15 => Task::Sts15,
            StsYear::Sts16 => Task::Sts16,
        }
    }
}

/// One reported number. Recalls are in percent, correlations x100.
///
/// Serialised (and used as a JSON map key) as its display string: `t2i R@1`, `i2t R@5`, `R@10`,
/// `subset R@2`, `dress R@10`, `spearman`, `pearson`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Metric {
    /// Text->image Recall@k.
    TextToImage(usize),
    /// Image->text Recall@k.
    ImageToText(usize),
    /// Recall@k of one FashionIQ category.
    CategoryRecall(FashionIqCategory, usize),
    /// Recall@k (CIRR; for FashionIQ the mean over the categories).
    Recall(usize),
    /// CIRR subset Recall@k.
    SubsetRecall(usize),
    /// Spearman's rho x100.
    Spearman,
    /// Pearson's r x100.
    Pearson,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::TextToImage(k) => write!(f, "t2i R@{k}"),
            Metric::ImageToText(k) => write!(f, "i2t R@{k}"),
            Metric::CategoryRecall(c, k) => write!(f, "{} R@{k}", c.name()),
            Metric::Recall(k) => write!(f, "R@{k}"),
            Metric::SubsetRecall(k) => write!(f, "subset R@{k}"),
            Metric::Spearman => f.write_str("spearman"),
            Metric::Pearson => f.write_str("pearson"),
        }
    }
}

impl FromStr for Metric {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EvalError::InvalidArgument(format!("unknown metric {s:?}"));
        match s {
            "spearman" => return Ok(Metric::Spearman),
            "pearson" => return Ok(Metric::Pearson),
            _ => {}
        }
        let (prefix, k) = s.rsplit_once("R@").ok_or_else(bad)?;
        let k: usize = k.parse().map_err(|_| bad())?;
        Ok(match prefix {
            "t2i " => Metric::TextToImage(k),
            "i2t " => Metric::ImageToText(k),
            "" => Metric::Recall(k),
            "subset " => Metric::SubsetRecall(k),
            other => {
                let category = other.strip_suffix(' ').ok_or_else(bad)?;
                Metric::CategoryRecall(category.parse().map_err(|_| bad())?, k)
            }
        })
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_round_trip() {
        let all = [
            Metric::TextToImage(1),
            Metric::ImageToText(10),
            Metric::CategoryRecall(FashionIqCategory::Toptee, 50),
            Metric::Recall(5),
            Metric::SubsetRecall(3),
            Metric::Spearman,
            Metric::Pearson,
        ];
        for m in all {
            assert_eq!(m.to_string().parse::<Metric>().expect("parses"), m);
        }
        assert_eq!(Metric::TextToImage(1).to_string(), "t2i R@1");
        assert_eq!(
            Metric::CategoryRecall(FashionIqCategory::Dress, 10).to_string(),
            "dress R@10"
        );
        assert!("R@x".parse::<Metric>().is_err());
        assert!("hat R@1".parse::<Metric>().is_err());
        assert!("recall".parse::<Metric>().is_err());
    }

    #[test]
    fn task_serde_names() {
        assert_eq!(
            serde_json::to_string(&Task::CirrVal).expect("json"),
            "\"cirr_val\""
        );
        assert_eq!(
            serde_json::to_string(&Task::StsBenchmark).expect("json"),
            "\"sts_benchmark\""
        );
        assert_eq!(Task::from(StsYear::Sts14), Task::Sts14);
        assert_eq!(
            serde_json::to_string(&Task::SimLex999).expect("json"),
            "\"simlex999\""
        );
        // Recall@10 sorts after Recall@5 (numeric k, not string order).
        assert!(Metric::Recall(5) < Metric::Recall(10));
    }
}
