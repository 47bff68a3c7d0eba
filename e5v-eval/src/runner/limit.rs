//! `--limit N`: the first N items of a dataset, for smoke runs (numbers not comparable with the
//! paper's).

use std::collections::BTreeSet;

use crate::datasets::{CirrDataset, FashionIqDataset, ImageTextDataset, StsYearData};

/// The first `n` images and their captions.
pub(crate) fn image_text(data: &mut ImageTextDataset, n: usize) {
    if n >= data.images.len() {
        return;
    }
    data.images.truncate(n);
    let keep = data.caption_to_image.iter().take_while(|&&i| i < n).count();
    data.captions.truncate(keep);
    data.caption_to_image.truncate(keep);
}

/// Keeps the gallery indices in `keep` (sorted), returning the old -> new map.
fn gallery_map(len: usize, keep: &BTreeSet<usize>) -> Vec<Option<usize>> {
    let mut map = vec![None; len];
    for (new, &old) in keep.iter().enumerate() {
        map[old] = Some(new);
    }
    map
}

/// Remaps an index that is known to be kept.
fn remap(map: &[Option<usize>], i: usize) -> usize {
    map[i].unwrap_or_default()
}

/// The first `n` queries; the gallery keeps its first `n` images plus every image those
/// queries refer to (reference, target, subset members), in gallery order.
pub(crate) fn cirr(data: &mut CirrDataset, n: usize) {
    data.queries.truncate(n);
    let mut keep: BTreeSet<usize> = (0..n.min(data.images.len())).collect();
    for q in &data.queries {
        keep.insert(q.reference);
        keep.extend(q.target);
        keep.extend(q.members.iter().copied());
    }
    let map = gallery_map(data.images.len(), &keep);
    data.images = keep.iter().map(|&i| data.images[i].clone()).collect();
    for q in &mut data.queries {
        q.reference = remap(&map, q.reference);
        q.target = q.target.map(|t| remap(&map, t));
        for m in &mut q.members {
            *m = remap(&map, *m);
        }
    }
}

/// The first `n` queries; the gallery keeps its first `n` images plus the queries' targets.
pub(crate) fn fashioniq(data: &mut FashionIqDataset, n: usize) {
    data.queries.truncate(n);
    let mut keep: BTreeSet<usize> = (0..n.min(data.images.len())).collect();
    keep.extend(data.queries.iter().map(|q| q.target));
    let map = gallery_map(data.images.len(), &keep);
    data.images = keep.iter().map(|&i| data.images[i].clone()).collect();
    for q in &mut data.queries {
        q.target = remap(&map, q.target);
    }
}

/// The first `n` pairs of a year, subsets in order.
pub(crate) fn sts_year(data: &mut StsYearData, n: usize) {
    let mut left = n;
    for subset in &mut data.subsets {
        subset.pairs.truncate(left);
        left -= subset.pairs.len();
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::datasets::{CirrQuery, CirrSplit, GalleryImage, RetrievalImage};

    #[test]
    fn image_text_keeps_whole_images() {
        let mut d = ImageTextDataset {
            images: (0..3)
                .map(|i| RetrievalImage {
                    path: PathBuf::from(format!("{i}.jpg")),
                    imgid: i,
                    cocoid: None,
                })
                .collect(),
            captions: (0..6).map(|i| format!("c{i}")).collect(),
            caption_to_image: vec![0, 0, 1, 1, 2, 2],
        };
        image_text(&mut d, 2);
        assert_eq!(d.images.len(), 2);
        assert_eq!(d.captions, ["c0", "c1", "c2", "c3"]);
        assert_eq!(d.caption_to_image, [0, 0, 1, 1]);
    }

    #[test]
    fn cirr_remaps_the_gallery() {
        let image = |i: usize| GalleryImage {
            name: format!("img{i}"),
            path: PathBuf::from(format!("{i}.png")),
        };
        let query = |reference, target, members: Vec<usize>| CirrQuery {
            pairid: 0,
            reference,
            target: Some(target),
            caption: String::new(),
            set_id: 0,
            members,
        };
        let mut d = CirrDataset {
            split: CirrSplit::Val,
            images: (0..10).map(image).collect(),
            queries: vec![query(7, 3, vec![7, 3, 9]), query(0, 1, vec![0, 1])],
        };
        cirr(&mut d, 1);
        // Kept: image 0 (first n), 3, 7, 9.
        let names: Vec<_> = d.images.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["img0", "img3", "img7", "img9"]);
        assert_eq!(d.queries.len(), 1);
        assert_eq!(d.queries[0].reference, 2);
        assert_eq!(d.queries[0].target, Some(1));
        assert_eq!(d.queries[0].members, [2, 1, 3]);
    }
}
