//! LLaVA-NeXT "anyres" packing of one image's crop features into the token sequence.

use burn::tensor::{Tensor, backend::Backend};

use crate::{ImagePipeline, ModelError, Result, anyres};

/// The geometry an image was cut with.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLayout<'a> {
    /// The original image size (height, width).
    pub image_size: (u32, u32),
    /// The anyres resolutions (height, width).
    pub pinpoints: &'a [(u32, u32)],
    /// Side of a crop in pixels (336).
    pub crop_size: u32,
    /// Patch features along a crop's side (24).
    pub patches_per_side: usize,
    /// Which transformers behaviour to reproduce.
    pub image_pipeline: ImagePipeline,
}

/// Base-crop features, then the grid crops' features laid out as one feature map, unpadded to
/// the image's aspect ratio, with `newline` appended after every row.
///
/// # Shapes
/// - features: `[crops, patches, hidden]`, crop 0 = the base crop, then the grid row-major
/// - newline: `[hidden]`
/// - output: `[patches + rows * (cols + 1), hidden]`
pub fn pack_image<B: Backend>(
    features: Tensor<B, 3>,
    newline: Tensor<B, 1>,
    layout: &ImageLayout<'_>,
) -> Result<Tensor<B, 2>> {
    let [crops, patches, hidden] = features.dims();
    let side = layout.patches_per_side;
    let (rows, cols) = anyres::grid_shape(
        layout.image_size,
        layout.pinpoints,
        layout.crop_size,
        layout.image_pipeline,
    );
    if patches != side * side || crops != 1 + rows * cols {
        return Err(ModelError::InvalidInput(format!(
            "image {:?} needs 1 + {rows}x{cols} crops of {side}x{side} patches, got {crops} crops of {patches}",
            layout.image_size
        )));
    }
    let base = features
        .clone()
        .slice([0..1, 0..patches, 0..hidden])
        .reshape([patches, hidden]);
    let map = features
        .slice([1..crops, 0..patches, 0..hidden])
        .reshape([rows, cols, side, side, hidden])
        .permute([4, 0, 2, 1, 3])
        .reshape([hidden, rows * side, cols * side]);
    let (keep_rows, keep_cols) = anyres::unpad_region(
        layout.image_size,
        (rows * side, cols * side),
        layout.image_pipeline,
    );
    let (kept_rows, kept_cols) = (keep_rows.len(), keep_cols.len());
    let map = map.slice([0..hidden, keep_rows, keep_cols]);
    let newline = newline
        .reshape([hidden, 1, 1])
        .expand([hidden, kept_rows, 1]);
    let grid = Tensor::cat(vec![map, newline], 2)
        .reshape([hidden, kept_rows * (kept_cols + 1)])
        .transpose();
    Ok(Tensor::cat(vec![base, grid], 0))
}
