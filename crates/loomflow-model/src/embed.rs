//! The [`Embedder`] port: text in, vectors out (memory recall uses it).

use async_trait::async_trait;

use crate::error::ModelError;

/// Turns texts into vectors of one fixed dimension.
///
/// ```
/// use async_trait::async_trait;
/// use loomflow_model::{Embedder, ModelError};
///
/// /// Length and vowel count: a toy two-dimensional embedding.
/// struct Toy;
///
/// #[async_trait]
/// impl Embedder for Toy {
///     fn name(&self) -> &str { "toy" }
///     fn dimensions(&self) -> usize { 2 }
///     async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
///         Ok(texts.iter().map(|t| {
///             let vowels = t.chars().filter(|c| "aeiou".contains(*c)).count();
///             vec![t.len() as f32, vowels as f32]
///         }).collect())
///     }
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(Toy.embed(&["tea"]).await.unwrap(), vec![vec![3.0, 2.0]]);
/// # });
/// ```
#[async_trait]
pub trait Embedder: Send + Sync + 'static {
    /// The embedding model's name.
    fn name(&self) -> &str;

    /// The length of every vector it returns.
    fn dimensions(&self) -> usize;

    /// One vector per text, in order.
    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError>;
}
